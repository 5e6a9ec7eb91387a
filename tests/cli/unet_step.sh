#!/bin/sh
# cdm-unet-step: runs on a golden model (eps and one step of each sampler,
# including a two-step DPM++ chain), checks output shapes from the safetensors
# header, and the error paths: a bad flag, a missing model folder, a missing
# label, a missing noise file -- each exit 1 with one stderr line -- and that
# no output file is left behind on failure.
cd "$(dirname "$0")/../.." || exit 1
BIN=${BIN:-bin}/cdm-unet-step
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
G=tests/golden/f_classes
[ -f $G/io.safetensors ] || { echo "FAIL: golden model $G missing"; exit 1; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
# header() FILE: the safetensors JSON header (as text)
header() { dd if="$1" bs=1 skip=8 count=2000 2>/dev/null | tr -d '\000' | head -c 2000; }
# one_line_error CMD...: exit 1, exactly one line on stderr starting with the tool's name
one_line_error() {
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	[ $rc = 1 ] || bad "'$*' exited $rc, expected 1"
	[ "$(wc -l <"$T/err")" = 1 ] || bad "'$*': stderr is not one line: $(cat "$T/err")"
	grep -q '^cdm-unet-step: ' "$T/err" || bad "'$*': stderr lacks the tool name: $(cat "$T/err")"
}

# --help: stdout, exit 0
$BIN --help >"$T/help" 2>&1 || bad "--help exit status"
grep -q 'usage: cdm-unet-step' "$T/help" || bad "--help text"

# eps of the golden input (x [2,1,H,W], labels 3 and 7)
$BIN -m $G -t 10 --label 3,7 --eps -o "$T/eps.st" $G/io.safetensors || bad "--eps run"
header "$T/eps.st" | grep -q '"eps":{"dtype":"F32","shape":\[2,1,' || bad "eps header: $(header "$T/eps.st")"

# one DDIM step from stdin to stdout (tensor x, same shape)
t0=$($BIN -m $G --timesteps | head -n 1)
[ "$t0" = 980 ] || bad "first ddim timestep '$t0', expected 980"
$BIN -m $G -t 980 --label 3 <$G/io.safetensors >"$T/ddim.st" || bad "ddim step"
header "$T/ddim.st" | grep -q '"x":{"dtype":"F32","shape":\[2,1,' || bad "ddim header"

# DDPM needs noise: missing -> error, given -> works (the golden x as z)
one_line_error $BIN -m $G --sampler ddpm -t 500 --label 3 -o "$T/ddpm.st" $G/io.safetensors
grep -q -- '--noise' "$T/err" || bad "ddpm without noise: $(cat "$T/err")"
[ -e "$T/ddpm.st" ] && bad "output left behind after a failure"
$BIN -m $G --sampler ddpm -t 500 --label 3 --noise "$T/ddim.st" -o "$T/ddpm.st" \
	$G/io.safetensors || bad "ddpm step with noise"

# DPM++ chain: first step writes x0_prev, the second consumes it
set -- $($BIN -m $G --sampler dpmpp --steps 10 --timesteps)
[ $# = 10 ] || bad "dpmpp --steps 10 lists $# timesteps"
$BIN -m $G --sampler dpmpp --steps 10 -t $1 --label 3 -o "$T/d1.st" $G/io.safetensors ||
	bad "dpmpp step 1"
header "$T/d1.st" | grep -q '"x0_prev"' || bad "dpmpp output lacks x0_prev"
$BIN -m $G --sampler dpmpp --steps 10 -t $2 --label 3 <"$T/d1.st" >"$T/d2.st" || bad "dpmpp step 2"
one_line_error $BIN -m $G --sampler dpmpp --steps 10 -t $3 --label 3 -o "$T/d3.st" "$T/d1.st"
grep -q 'x0_prev' "$T/err" || bad "dpmpp history mismatch not detected: $(cat "$T/err")"
[ -e "$T/d3.st" ] && bad "dpmpp: output left behind"

# errors: bad flag, missing value, missing model, missing label, bad timestep, bad input
one_line_error $BIN --bogus-flag
one_line_error $BIN -m $G -t
one_line_error $BIN -m "$T/no-such-model" -t 980 -o "$T/x.st" $G/io.safetensors
grep -q 'no-such-model' "$T/err" || bad "missing model message: $(cat "$T/err")"
one_line_error $BIN -m $G -t 980 -o "$T/x.st" $G/io.safetensors
grep -q -- '--label' "$T/err" || bad "missing label message: $(cat "$T/err")"
one_line_error $BIN -m $G -t 981 --label 3 -o "$T/x.st" $G/io.safetensors
one_line_error $BIN -m $G -t 980 --label 12 -o "$T/x.st" $G/io.safetensors
one_line_error $BIN -m $G -t abc --label 3 -o "$T/x.st" $G/io.safetensors
printf 'not a safetensors file' >"$T/junk"
one_line_error $BIN -m $G -t 980 --label 3 -o "$T/x.st" "$T/junk"
[ -e "$T/x.st" ] && bad "output left behind after failures"
ls -a "$T" | grep -q '^\.x\.st' && bad "temporary file left behind"

# a bundled model, when present, runs too (on the golden 12x12 input: any size
# that halves evenly is accepted; 6x6 would not be for a 3-level model)
for M in share/models/mnist share/models/mnist-tiny; do
	[ -f $M/config.json ] || { echo "note: $M not present, skipped"; continue; }
	$BIN -m $M -t 10 --label 1 --eps -o "$T/m.st" $G/io.safetensors || bad "$M: --eps run"
	header "$T/m.st" | grep -q '"eps":{"dtype":"F32","shape":\[2,1,' ||
		bad "$M: eps header: $(header "$T/m.st")"
done
[ $fail = 0 ] && echo "cdm-unet-step CLI: all checks passed"
exit $fail
