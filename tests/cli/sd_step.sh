#!/bin/sh
# cdm-unet-step, Stable Diffusion modes, on the goldens of tests/golden_sd:
# --tokenize -> --text-encode -> a UNet2DConditionModel step with --context
# (eps with one timestep per element, and a DDIM step) -> --vae-decode, also
# through an SD pipeline folder (model_index.json + unet/ vae/ text_encoder/
# tokenizer/); output shapes are read from the safetensors headers. Bad
# inputs exit 1 with one stderr line and leave no output: missing or
# mismatched --context, --context on a UNet2DModel, wrong tensors or shapes,
# out-of-vocabulary ids, conflicting modes.
cd "$(dirname "$0")/../.." || exit 1
BIN=${BIN:-bin}/cdm-unet-step
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
G=tests/golden_sd
for c in tok c_fasttest u_fasttest u_linear v_fasttest; do
	[ -d $G/$c ] || { echo "FAIL: golden $G/$c missing"; exit 1; }
done
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
header() { dd if="$1" bs=1 skip=8 count=2000 2>/dev/null | tr -d '\000' | head -c 2000; }
has() { header "$1" | grep -q "$2" || bad "$1: header lacks $2: $(header "$1")"; }
one_line_error() {
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	[ $rc = 1 ] || bad "'$*' exited $rc, expected 1"
	[ "$(wc -l <"$T/err")" = 1 ] || bad "'$*': stderr is not one line: $(cat "$T/err")"
	grep -q '^cdm-unet-step: ' "$T/err" || bad "'$*': stderr lacks the tool name: $(cat "$T/err")"
}
expect_msg() { grep -q -- "$1" "$T/err" || bad "message lacks '$1': $(cat "$T/err")"; }

# the chain on the component folders
$BIN --tokenize -m $G/tok -o "$T/ids.st" "a photo of an ankle boot" "A PHOTO of a bag!" ||
	bad "--tokenize"
has "$T/ids.st" '"ids":{"dtype":"I64","shape":\[2,77\]'
$BIN --text-encode -m $G/c_fasttest -o "$T/ctx.st" "$T/ids.st" || bad "--text-encode"
has "$T/ctx.st" '"ctx":{"dtype":"F32","shape":\[2,77,8\]'
$BIN -m $G/u_fasttest -t 999,10 --eps --context "$T/ctx.st" -o "$T/eps.st" \
	$G/u_fasttest/io.safetensors || bad "--context --eps"
has "$T/eps.st" '"eps":{"dtype":"F32","shape":\[2,4,8,8\]'
$BIN -m $G/u_fasttest -t 980 --context "$T/ctx.st" <$G/u_fasttest/io.safetensors >"$T/x.st" ||
	bad "--context DDIM step"
has "$T/x.st" '"x":{"dtype":"F32","shape":\[2,4,8,8\]'
$BIN --vae-decode -m $G/v_fasttest <$G/v_fasttest/io.safetensors >"$T/img.st" || bad "--vae-decode"
has "$T/img.st" '"x":{"dtype":"F32","shape":\[1,3,16,16\]'

# the same through a pipeline folder
P="$T/pipe"
mkdir -p "$P"
echo '{"_class_name": "StableDiffusionPipeline"}' >"$P/model_index.json"
ln -s "$PWD/$G/u_fasttest" "$P/unet"; ln -s "$PWD/$G/v_fasttest" "$P/vae"
ln -s "$PWD/$G/c_fasttest" "$P/text_encoder"; ln -s "$PWD/$G/tok" "$P/tokenizer"
$BIN --tokenize -m "$P" "a bag" "a coat" | $BIN --text-encode -m "$P" >"$T/ctx2.st" ||
	bad "pipeline: tokenize | text-encode"
has "$T/ctx2.st" '"ctx":{"dtype":"F32","shape":\[2,77,8\]'
$BIN -m "$P" -t 500,20 --eps --context "$T/ctx2.st" -o "$T/eps2.st" \
	$G/u_fasttest/io.safetensors || bad "pipeline: --context"
$BIN --vae-decode -m "$P" -o "$T/img2.st" $G/v_fasttest/io.safetensors || bad "pipeline: vae"
# sampler latents `x` (no `z`) are divided by scaling_factor and decoded
$BIN --vae-decode -m "$P" -o "$T/img3.st" $G/u_fasttest/io.safetensors || bad "vae of latents x"
has "$T/img3.st" '"x":{"dtype":"F32","shape":\[2,3,16,16\]'

# errors
one_line_error $BIN -m $G/u_fasttest -t 980 -o "$T/e.st" $G/u_fasttest/io.safetensors
expect_msg '--context'
one_line_error $BIN -m $G/u_fasttest -t 980 --context "$T/no-such.st" -o "$T/e.st" \
	$G/u_fasttest/io.safetensors
expect_msg 'no-such.st'
one_line_error $BIN -m $G/u_linear -t 980 --context "$T/ctx.st" -o "$T/e.st" \
	$G/u_linear/io.safetensors
expect_msg 'ctx: shape \[2,77,8\], expected \[1,L,6\]'
one_line_error $BIN -m $G/u_fasttest -t 980 --context "$T/ids.st" -o "$T/e.st" \
	$G/u_fasttest/io.safetensors
one_line_error $BIN -m $G/u_fasttest -t 980 --label 1 --context "$T/ctx.st" -o "$T/e.st" \
	$G/u_fasttest/io.safetensors
one_line_error $BIN -m tests/golden/f_classes -t 980 --label 1 --context "$T/ctx.st" \
	-o "$T/e.st" tests/golden/f_classes/io.safetensors
expect_msg 'not a UNet2DConditionModel'
one_line_error $BIN --vae-decode -m $G/v_fasttest -o "$T/e.st" "$T/ids.st"
expect_msg "no tensor 'z' (nor sampler latents 'x')"
one_line_error $BIN --vae-decode -m $G/v_fasttest -o "$T/e.st" "$T/ctx.st"
one_line_error $BIN --vae-decode -m $G/u_fasttest -o "$T/e.st" $G/v_fasttest/io.safetensors
expect_msg "AutoencoderKL"
one_line_error $BIN --text-encode -m $G/c_gelu -o "$T/e.st" "$T/ids.st"
expect_msg 'takes 1..16'
one_line_error $BIN --text-encode -m $G/c_fasttest -o "$T/e.st" "$T/ctx.st"
one_line_error $BIN --text-encode --vae-decode -m $G/c_fasttest -o "$T/e.st" "$T/ids.st"
one_line_error $BIN --tokenize -m $G/tok -o "$T/e.st"
one_line_error $BIN --tokenize -m $G/c_fasttest -o "$T/e.st" "a prompt"
expect_msg 'vocab.json'
one_line_error $BIN --vae-decode -t 5 -m $G/v_fasttest -o "$T/e.st" $G/v_fasttest/io.safetensors
[ -e "$T/e.st" ] && bad "output left behind after failures"
ls -a "$T" | grep -q '^\.e\.st' && bad "temporary file left behind"
[ $fail = 0 ] && echo "cdm-unet-step SD modes: all checks passed"
exit $fail
