#!/bin/sh
# Stable Diffusion end to end on a tiny random-weight pipeline assembled
# from the goldens of tests/golden_sd (CLIP text encoder, UNet2DConditionModel
# with cross-attention, AutoencoderKL decoder, BPE tokenizer) and SD 1.5's
# scheduler settings (scaled_linear, steps_offset 1, set_alpha_to_one false).
#   1. cdm-unet-step --guidance S == eps_u + S (eps_c - eps_u) from two
#      --eps runs (float64 combination here, awk), and S <= 1 == eps_c;
#   2. cdm-share of the pipeline folder and of a prompt (--seed, --dump-noise);
#   3. three cdm-party over TCP: DDIM with guidance 7.5 (batch 1), and DPM++
#      with another prompt and a negative prompt (batch 2); each revealed
#      image within 35 dB PSNR of the plaintext loop tokenize -> text-encode ->
#      cdm-unet-step --guidance steps -> --vae-decode from the same x_T;
#   4. different prompts give different images (PSNR < 30 dB between them);
#   5. errors exit 1 with one line and leave no output: a prompt for a
#      UNet2DModel, a pipeline without --prompt, a label input on SD shares,
#      --checkpoint on SD shares, a prompt input on UNet2DModel shares;
#      scripts/demo-sd.sh says when its model is missing.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal cdm-unet-step; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
P="$T/pipe"
sd_tiny_pipeline "$P" || exit 1
STEPS=4
US="$B/cdm-unet-step"

# floats of tensor NAME of a safetensors FILE (F32, little-endian), one a line
floats() {
	st_data "$1" | od -An -v -tf4 -w4 | tr -d ' '
}

# ---- 1. guidance arithmetic -----------------------------------------------------
$US --tokenize -m "$P" -o "$T/ids" "" "a photo of a bag" &&
	$US --text-encode -m "$P" -o "$T/ctx" "$T/ids" || bad "tokenize/text-encode"
$B/cdm-share -o "$T/a" --input --prompt "a photo of a bag" --seed 11 --dump-noise "$T/xa" "$P" \
	2>"$T/err" || bad "cdm-share --prompt (folder): $(cat "$T/err")"
# x_T as the eps input: both halves of the context, then guided
$US --tokenize -m "$P" -o "$T/ids_u" "" && $US --text-encode -m "$P" -o "$T/ctx_u" "$T/ids_u" &&
	$US --tokenize -m "$P" -o "$T/ids_c" "a photo of a bag" &&
	$US --text-encode -m "$P" -o "$T/ctx_c" "$T/ids_c" || bad "single contexts"
$US -m "$P" -t 501 --eps --context "$T/ctx_u" -o "$T/eu" "$T/xa" &&
	$US -m "$P" -t 501 --eps --context "$T/ctx_c" -o "$T/ec" "$T/xa" &&
	$US -m "$P" -t 501 --eps --context "$T/ctx" --guidance 7.5 -o "$T/eg" "$T/xa" &&
	$US -m "$P" -t 501 --eps --context "$T/ctx" --guidance 1 -o "$T/e1" "$T/xa" ||
	bad "--eps runs"
floats "$T/eu" >"$T/fu"; floats "$T/ec" >"$T/fc"; floats "$T/eg" >"$T/fg"; floats "$T/e1" >"$T/f1"
n=$(wc -l <"$T/fg")
[ "$n" = 1024 ] || bad "guided eps has $n values, expected 1024"
paste "$T/fu" "$T/fc" "$T/fg" "$T/f1" | awk '
	{ want = $1 + 7.5 * ($2 - $1); d = want - $3; if (d < 0) d = -d
	  s = want < 0 ? -want : want; if (s > m) m = s; if (d > e) e = d
	  if ($4 != $2) same = 1 }
	END { printf "guidance: max |eps| %.3f, max error %.2e\n", m, e
	      exit !(m > 0.1 && e <= 1e-5 * m && !same) }' || bad "guided eps != eps_u + 7.5 (eps_c - eps_u)"

# ---- 2-4. secure vs plaintext ------------------------------------------------------
# plain NAME XT SAMPLER GUIDANCE NEG PROMPT: the plaintext pipeline -> $T/NAME.img
plain() {
	local name=$1 xt=$2 s=$3 g=$4 t
	$US --tokenize -m "$P" -o "$T/$name.ids" "$5" "$6" &&
		$US --text-encode -m "$P" -o "$T/$name.ctx" "$T/$name.ids" || bad "$name: text"
	cp "$xt" "$T/$name.x"
	for t in $($US -m "$P" --sampler $s --steps $STEPS --timesteps); do
		$US -m "$P" -t $t --sampler $s --steps $STEPS --context "$T/$name.ctx" \
			--guidance $g <"$T/$name.x" >"$T/$name.next" &&
			mv "$T/$name.next" "$T/$name.x" || bad "$name: step t=$t"
	done
	$US --vae-decode -m "$P" -o "$T/$name.img" "$T/$name.x" || bad "$name: vae-decode"
}
# trio NAME INPUT FLAGS...: three parties on the pipeline shares, statuses st0..st2
trio() {
	local name=$1 in=$2 port i
	shift 2
	port=$(free_ports 3)
	for i in 0 1 2; do
		(exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$T/m.$i" \
			--input "$in.$i" -o "$T/$name.out.$i" -q --timeout 20 --steps $STEPS \
			--stats "$T/$name.stats.$i" "$@" 2>"$T/$name.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	wait_trio
}
# psnr REF X: dB of the 8-bit images (inf as 999)
psnr() {
	local r
	r=$($B/cdm-reveal --psnr "$1" "$2") || { bad "cdm-reveal --psnr $1 $2"; echo 0; return; }
	r=${r#psnr_db=}; r=${r%% *}
	[ "$r" = inf ] && r=999
	echo "$r"
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

$B/cdm-share -o "$T/m" "$P" 2>"$T/err" || bad "cdm-share of the pipeline: $(cat "$T/err")"
st_header "$T/m.1" | grep -q '"pipeline":"stable-diffusion"' || bad "model share lacks pipeline"
st_header "$T/m.1" | grep -q 'encoder.conv_in' && bad "model share holds VAE encoder weights"
st_header "$T/m.2" | grep -q '"text_model.final_layer_norm.weight.a"' ||
	bad "model share lacks text encoder weights"
# from the model share: the same tokens, so the same shares but for masks
$B/cdm-share -o "$T/b" --input --prompt "a picture of a shoe" --negative-prompt "a bag" \
	--batch 2 --seed 12 --dump-noise "$T/xb" "$T/m.0" 2>"$T/err" ||
	bad "cdm-share --prompt (share): $(cat "$T/err")"
st_header "$T/b.2" | grep -q '"ids.a":{"dtype":"U64","shape":\[154,1000\]' ||
	bad "input share: ids not [154,1000]: $(st_header "$T/b.2" | head -c 300)"

t0=$(now_s)
trio ddim "$T/a" --sampler ddim --guidance 7.5
[ "$st0$st1$st2" = 000 ] || bad "DDIM run: exits $st0 $st1 $st2: $(cat "$T"/ddim.err.*)"
trio dpm "$T/b" --sampler dpmpp --guidance 5
[ "$st0$st1$st2" = 000 ] || bad "DPM++ run: exits $st0 $st1 $st2: $(cat "$T"/dpm.err.*)"
echo "two secure SD runs ($STEPS steps each): $(( $(now_s) - t0 )) s"
plain pa "$T/xa" ddim 7.5 "" "a photo of a bag"
plain pb "$T/xb" dpmpp 5 "a bag" "a picture of a shoe"
plain pa2 "$T/xa" ddim 7.5 "" "a picture of a shoe"
$B/cdm-reveal -o "$T/ddim.st" "$T/ddim.out.0" "$T/ddim.out.2" || bad "reveal ddim"
$B/cdm-reveal -o "$T/dpm.st" "$T/dpm.out.1" "$T/dpm.out.2" || bad "reveal dpm"
$B/cdm-reveal -o "$T/ddim.png" "$T/ddim.out.0" "$T/ddim.out.1" "$T/ddim.out.2" || bad "reveal png"
head -c 8 "$T/ddim.png" | od -An -tx1 | grep -q '89 50 4e 47' || bad "not a PNG"
d1=$(psnr "$T/pa.img" "$T/ddim.st") d2=$(psnr "$T/pb.img" "$T/dpm.st")
d3=$(psnr "$T/pa.img" "$T/pa2.img")
echo "PSNR secure vs plaintext: DDIM $d1 dB, DPM++ (batch 2) $d2 dB; prompt A vs B: $d3 dB"
ge "$d1" 35 || bad "DDIM: PSNR $d1 dB < 35"
ge "$d2" 35 || bad "DPM++: PSNR $d2 dB < 35"
ge "$d3" 30 && bad "prompts A and B give images within $d3 dB"
grep -q '"softmax"' "$T/ddim.stats.0" && grep -q '"layernorm"' "$T/ddim.stats.0" ||
	bad "stats lack per-layer entries: $(cat "$T/ddim.stats.0")"

# ---- 5. errors -------------------------------------------------------------------------
run_cmd $B/cdm-share -o "$T/e" --input --prompt "a bag" $M
assert_exit 1 "--prompt on a UNet2DModel"
assert_one_line "$T/stderr" "--prompt on a UNet2DModel" "Stable Diffusion"
run_cmd $B/cdm-share -o "$T/e" --input --seed 1 "$T/m.2"
assert_exit 1 "SD share without --prompt"
assert_one_line "$T/stderr" "SD share without --prompt" "--prompt"
run_cmd $B/cdm-share -o "$T/e" --input --negative-prompt x --seed 1 "$P"
assert_exit 1 "--negative-prompt alone"
assert_absent "--negative-prompt alone" "$T/e.0"
$B/cdm-share -o "$T/lab" --input --label 3 --seed 1 $M 2>/dev/null || bad "label input"
trio lab "$T/lab"
[ "$st0$st1$st2" = 111 ] || bad "label input on SD shares: exits $st0 $st1 $st2"
assert_one_line "$T/lab.err.1" "label input on SD shares" "not a prompt input share"
assert_absent "label input on SD shares" "$T/lab.out.1"
trio ck "$T/a" --checkpoint "$T/ck"
[ "$st0$st1$st2" = 111 ] || bad "--checkpoint on SD shares: exits $st0 $st1 $st2"
assert_one_line "$T/ck.err.0" "--checkpoint on SD shares" "not supported"
assert_absent "--checkpoint on SD shares" "$T/ck.out.0"
MS=$(model_shares) || exit 1
for i in 0 1 2; do cp "$MS.$i" "$T/m.$i"; done  # UNet2DModel shares, prompt input
trio unet "$T/a"
[ "$st0$st1$st2" = 111 ] || bad "prompt input on UNet2DModel shares: exits $st0 $st1 $st2"
assert_one_line "$T/unet.err.2" "prompt input on UNet2DModel shares" \
	"not the share of a Stable Diffusion pipeline"
# make demo-sd without its model: a clear message, exit 1
run_cmd env MODEL="$T/no-such-model" OUT="$T/demo" sh scripts/demo-sd.sh
assert_exit 1 "demo-sd without the model"
grep -q "the model $T/no-such-model is missing" "$T/stderr" ||
	bad "demo-sd without the model: $(cat "$T/stderr")"
finish "sd pipeline"
