#!/bin/sh
# make demo-sd: text to image under MPC. Share the bundled Stable-Diffusion-
# shaped pipeline share/models/sd-digits and a prompt, run the three parties
# on localhost (classifier-free guidance on shares, then the VAE decoder),
# reveal the PNG, print its path and the time.
#   PROMPT="a handwritten digit three" SEED=7 STEPS=25 GUIDANCE=4 make demo-sd
# GUIDANCE defaults to 4 (what the sd-digits model was evaluated with;
# cdm-party's own default is diffusers' 7.5).
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
MODEL=${MODEL:-share/models/sd-digits}
PROMPT=${PROMPT:-a handwritten digit seven}
NEGATIVE=${NEGATIVE:-}
SEED=${SEED:-42}
SAMPLER=${SAMPLER:-ddim}
STEPS=${STEPS:-25}
GUIDANCE=${GUIDANCE:-4}
OUT=${OUT:-out/demo-sd}
if [ ! -f "$MODEL/model_index.json" ] || [ ! -d "$MODEL/unet" ]; then
	echo "demo-sd: the model $MODEL is missing (a Stable Diffusion pipeline folder with" >&2
	echo "demo-sd: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/);" >&2
	echo "demo-sd: set MODEL=DIR to use another pipeline" >&2
	exit 1
fi
mkdir -p "$OUT"
ports=$(sh scripts/free-ports.sh)
start=$(date +%s)
echo "demo-sd: model owner shares $MODEL (UNet, VAE decoder, text encoder)"
"$BIN/cdm-share" -o "$OUT/model" "$MODEL"
echo "demo-sd: user tokenizes and shares the prompt \"$PROMPT\", seed $SEED"
"$BIN/cdm-share" -o "$OUT/input" --input --prompt "$PROMPT" --negative-prompt "$NEGATIVE" \
	--seed "$SEED" "$MODEL"
echo "demo-sd: three parties on $ports ($SAMPLER, $STEPS steps, guidance $GUIDANCE)"
pids=""
for i in 0 1 2; do
	q=-q; [ $i = 0 ] && q=""
	"$BIN/cdm-party" $q --id $i --peers "$ports" --model "$OUT/model.$i" --input "$OUT/input.$i" \
		--sampler "$SAMPLER" --steps "$STEPS" --guidance "$GUIDANCE" \
		--stats "$OUT/stats.$i.json" -o "$OUT/out.$i" &
	pids="$pids $!"
done
status=0
for p in $pids; do wait $p || status=$?; done
[ $status = 0 ] || { echo "demo-sd: a party failed (exit $status)" >&2; exit $status; }
echo "demo-sd: user reveals the image from two of the three output shares"
"$BIN/cdm-reveal" -o "$OUT/image.png" "$OUT/out.0" "$OUT/out.1"
case $OUT in /*) img=$OUT/image.png ;; *) img=$(pwd)/$OUT/image.png ;; esac
echo "demo-sd: done in $(( $(date +%s) - start )) s: $img"
