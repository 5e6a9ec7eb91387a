#!/bin/sh
# cdm-party --public-model PIPELINE_DIR: Stable Diffusion with public weights
# (all three parties read the plaintext pipeline folder) and a secret prompt,
# x_T and image, on the tiny random-weight pipeline of sd_pipeline.sh
# (tests/golden_sd, SD's scheduler settings), three processes over TCP.
#   1. DDIM, guidance 7.5, 4 steps: the revealed image within 35 dB PSNR of
#      the plaintext loop (tokenize -> text-encode -> cdm-unet-step --guidance
#      -> --vae-decode) from the same x_T;
#   2. the same config on model shares: the public run sends fewer bytes and
#      needs fewer rounds (both from --stats, party 0, and bytes summed over
#      the three parties), all of them as tracked in tests/cli/costs.tsv;
#      stats say public_model true;
#   3. one party on shares and two on the folder disagree (exit 1, one line
#      naming "public:"); a folder that is not a pipeline with a prompt input
#      is refused before anything is written.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal cdm-unet-step; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
P="$T/pipe"
sd_tiny_pipeline "$P" || exit 1
STEPS=4
US="$B/cdm-unet-step"
PROMPT="a photo of a bag"

# trio NAME MODE(public|shares|mixed) FLAGS...: three parties, statuses st0..st2
trio() {
	local name=$1 mode=$2 port i mf
	shift 2
	port=$(free_ports 3)
	for i in 0 1 2; do
		mf="--public-model ${PUB:-$P}"
		{ [ $mode = shares ] || { [ $mode = mixed ] && [ $i = 0 ]; }; } && mf="--model $T/m.$i"
		(exec $B/cdm-party --id $i --peers "$(peers_list $port)" $mf --input "$T/in.$i" \
			-o "$T/$name.out.$i" -q --timeout 20 --steps $STEPS --sampler ddim \
			--guidance 7.5 --stats "$T/$name.stats.$i" "$@" 2>"$T/$name.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	wait_trio
}
# top-level integer KEY of a stats file
stat() { grep -o "^  \"$2\": [0-9]*" "$1" | grep -o '[0-9]*$'; }
secs() { grep -o '^  "seconds": [0-9.e+-]*' "$1" | awk '{ print $2 }'; }
total_bytes() {
	for i in 0 1 2; do stat "$T/$1.stats.$i" bytes_sent; done |
		awk '{ s += $1 } END { printf "%.0f\n", s }'
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > 0 && a < b) }'; }

$B/cdm-share -o "$T/m" "$P" 2>"$T/err" || bad "cdm-share of the pipeline: $(cat "$T/err")"
$B/cdm-share -o "$T/in" --input --prompt "$PROMPT" --seed 11 --dump-noise "$T/xT" "$P" \
	2>"$T/err" || bad "cdm-share --prompt: $(cat "$T/err")"

# ---- 1. public weights vs the plaintext loop -------------------------------------
trio pub public
if [ "$st0$st1$st2" = 000 ]; then
	$US --tokenize -m "$P" -o "$T/ids" "" "$PROMPT" &&
		$US --text-encode -m "$P" -o "$T/ctx" "$T/ids" || bad "plaintext text encoder"
	cp "$T/xT" "$T/x"
	for t in $($US -m "$P" --sampler ddim --steps $STEPS --timesteps); do
		$US -m "$P" -t $t --sampler ddim --steps $STEPS --context "$T/ctx" --guidance 7.5 \
			<"$T/x" >"$T/next" && mv "$T/next" "$T/x" || bad "plaintext step t=$t"
	done
	$US --vae-decode -m "$P" -o "$T/plain" "$T/x" || bad "plaintext --vae-decode"
	r=$($B/cdm-reveal -o "$T/pub.st" --psnr "$T/plain" "$T/pub.out.0" "$T/pub.out.2") ||
		bad "cdm-reveal of the public run"
	db=${r#psnr_db=}; db=${db%% *}
	echo "public weights vs plaintext: $r"
	[ "$db" = inf ] || awk -v d="$db" 'BEGIN { exit !(d >= 35) }' || bad "PSNR $db dB < 35"
	for i in 0 1 2; do
		grep -q '"public_model": true' "$T/pub.stats.$i" || bad "stats $i lack public_model true"
	done
	# ---- 2. what it saves ---------------------------------------------------------
	trio sec shares
	if [ "$st0$st1$st2" = 000 ]; then
		bp=$(stat "$T/pub.stats.0" bytes_sent) bs=$(stat "$T/sec.stats.0" bytes_sent)
		rp=$(stat "$T/pub.stats.0" rounds) rs=$(stat "$T/sec.stats.0" rounds)
		tp=$(total_bytes pub) ts=$(total_bytes sec)
		echo "party 0, $STEPS steps: public weights $bp bytes $rp rounds $(secs "$T/pub.stats.0") s;" \
			"model shares $bs bytes $rs rounds $(secs "$T/sec.stats.0") s; 3 parties $tp vs $ts bytes"
		assert_tracked sd-tiny-public $bp $rp $tp
		assert_tracked sd-tiny-shares $bs $rs $ts
		lt "$bp" "$bs" || bad "public run sent $bp bytes (party 0), shares $bs"
		lt "$rp" "$rs" || bad "public run took $rp rounds, shares $rs"
		lt "$tp" "$ts" || bad "public run sent $tp bytes (3 parties), shares $ts"
		r=$($B/cdm-reveal -o "$T/sec.st" --psnr "$T/pub.st" "$T/sec.out.0" "$T/sec.out.1") ||
			bad "cdm-reveal of the shares run"
		echo "public vs shares run: $r"
	else
		bad "run on model shares failed: $(cat "$T"/sec.err.*)"
	fi
else
	bad "public-weights run failed: $(cat "$T"/pub.err.*)"
fi

# ---- 3. errors ------------------------------------------------------------------
trio mixed mixed
trio_refused mixed "mixed models" "disagrees on model_sharing" "public:"
PUB=$M trio unet public
trio_refused unet "prompt input, UNet2DModel public folder" "not a Stable Diffusion pipeline"
finish "sd public weights"
