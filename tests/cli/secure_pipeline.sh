#!/bin/sh
# Secure pipeline end to end, three cdm-party processes over TCP loopback:
# cdm-share (model; input with --seed and --dump-noise) -> cdm-party x3 ->
# cdm-reveal, against the plaintext cdm-unet-step loop from the same x_T:
# DDIM (eta 0, batch 2, labels 3 and 7) and DPM++ must give 8-bit images with
# PSNR >= 40 dB (SPEC section 5). Also: the --stats JSON of each party (with
# by_layer), a three-share reveal to PNG, and a DDPM run with jointly
# generated noise (no --seed) whose image is finite and in range.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal cdm-unet-step; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
[ -f $M/config.json ] || { echo "FAIL: no bundled MNIST model"; exit 1; }

# parties NAME ARGS...: run the three parties on three ports probed free,
# wait for all
parties() {
	name=$1; shift
	PORT=$(free_ports 3)
	peers=127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))
	PIDS=""
	for i in 0 1 2; do
		$B/cdm-party --id $i --peers $peers --model "$T/m.$i" --input "$T/$name.in.$i" \
			-o "$T/$name.out.$i" --stats "$T/$name.stats.$i.json" --timeout 60 -q "$@" \
			2>"$T/$name.err.$i" &
		PIDS="$PIDS $!"
	done
	st=0
	for p in $PIDS; do wait $p || st=1; done
	PIDS=""
	[ $st = 0 ] || bad "$name: a party failed: $(cat "$T/$name".err.*)"
	return $st
}

# plain NAME SAMPLER STEPS LABELS: the cdm-unet-step loop from $T/NAME.xT
plain() {
	cp "$T/$1.xT" "$T/$1.plain"
	for t in $($B/cdm-unet-step -m $M --sampler $2 --steps $3 --timesteps); do
		$B/cdm-unet-step -m $M --sampler $2 --steps $3 -t $t --label $4 \
			<"$T/$1.plain" >"$T/$1.next" && mv "$T/$1.next" "$T/$1.plain" ||
			{ bad "$1: cdm-unet-step -t $t"; return 1; }
	done
}

# psnr_at_least NAME DB: reveal NAME's outputs (parties 0 and 2) and compare
psnr_at_least() {
	r=$($B/cdm-reveal -o "$T/$1.st" --psnr "$T/$1.plain" "$T/$1.out.0" "$T/$1.out.2") ||
		{ bad "$1: cdm-reveal"; return; }
	db=${r#psnr_db=}; db=${db%% *}
	echo "$1: $r"
	[ "$db" = inf ] || awk -v d="$db" -v m="$2" 'BEGIN { exit !(d >= m) }' ||
		bad "$1: PSNR $db dB < $2 dB"
}

$B/cdm-share -o "$T/m" $M || bad "share model"
for f in m.0 m.1 m.2; do
	[ "$(stat -c %a "$T/$f")" = 600 ] || bad "$f mode $(stat -c %a "$T/$f"), expected 600"
done

# DDIM, eta 0, batch 2
$B/cdm-share -o "$T/ddim.in" --input --label 3,7 --seed 1234 --dump-noise "$T/ddim.xT" $M ||
	bad "share input"
if parties ddim --sampler ddim --steps 4; then
	plain ddim ddim 4 3,7 && psnr_at_least ddim 40
	for i in 0 1 2; do
		s="$T/ddim.stats.$i.json"
		[ -s "$s" ] || { bad "no stats from party $i"; continue; }
		for k in '"suite": "cdm"' '"sampler": "ddim"' '"steps": 4' '"by_layer"' '"conv"' \
			'"groupnorm"' '"silu"' '"softmax"' '"sampler"' '"peak_rss_bytes"'; do
			grep -q "$k" "$s" || bad "stats $i lacks $k"
		done
	done
	$B/cdm-reveal -o "$T/ddim.png" "$T/ddim.out.0" "$T/ddim.out.1" "$T/ddim.out.2" ||
		bad "three-share reveal"
	[ "$(head -c 4 "$T/ddim.png" | tail -c 3)" = PNG ] || bad "ddim.png is not a PNG"
fi

# DPM++ 2M, batch 1
$B/cdm-share -o "$T/dpm.in" --input --label 5 --seed 99 --dump-noise "$T/dpm.xT" $M ||
	bad "share dpm input"
parties dpm --sampler dpmpp --steps 3 && plain dpm dpmpp 3 5 && psnr_at_least dpm 40

# DDPM with joint noise: x_T and the step noise come from the parties
$B/cdm-share -o "$T/ddpm.in" --input --label 1 $M || bad "share ddpm input"
if parties ddpm --sampler ddpm --steps 2; then
	$B/cdm-reveal -o "$T/ddpm.st" "$T/ddpm.out.1" "$T/ddpm.out.2" || bad "ddpm reveal"
	$B/cdm-reveal -o "$T/ddpm.png" "$T/ddpm.st" || bad "plaintext tensor to PNG"
	# the sample is finite and of sane size (a wrapped share would give values
	# near +-2^43), and not constant
	r=$($B/cdm-reveal --summary "$T/ddpm.out.0" "$T/ddpm.out.1") || bad "ddpm summary"
	echo "ddpm: $r"
	echo "$r" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
		END { exit !(v["min"] > -5 && v["max"] < 5 && v["std"] > 0.05) }' ||
		bad "ddpm sample out of range: $r"
fi

finish "secure pipeline ($M)"
