#!/bin/sh
# plain.sh BIN MODEL SAMPLER STEPS LABEL SEED XT OUT
# The plaintext float32 reference image: the cdm-unet-step loop of SAMPLER
# with STEPS steps from x_T (XT, tensor `x`), written to OUT (tensor `x`).
# DDPM steps need a noise tensor each: drawn from seed SEED*1000+k with
# cdm-share --dump-noise (a different stream from the secure run's, whose
# per-step noise the parties generate jointly and nobody knows).
set -e
bin=$1 model=$2 sampler=$3 steps=$4 label=$5 seed=$6 xt=$7 out=$8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$xt" "$tmp/x"
k=0
for t in $("$bin/cdm-unet-step" -m "$model" --sampler "$sampler" --steps "$steps" --timesteps); do
	noise=
	if [ "$sampler" = ddpm ] && [ "$t" != 0 ]; then
		"$bin/cdm-share" -o "$tmp/z" --input --label "$label" --seed $((seed * 1000 + k)) \
			--dump-noise "$tmp/z.st" "$model"
		noise="--noise $tmp/z.st"
	fi
	"$bin/cdm-unet-step" -m "$model" --sampler "$sampler" --steps "$steps" -t "$t" \
		--label "$label" $noise -o "$tmp/next" "$tmp/x"
	mv "$tmp/next" "$tmp/x"
	k=$((k + 1))
done
mv "$tmp/x" "$out"
