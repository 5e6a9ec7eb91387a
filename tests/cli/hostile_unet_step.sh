#!/bin/sh
# Hostile model folders and inputs given to cdm-unet-step (the plaintext
# reference). Model: weight file truncated mid-data, header length beyond
# the file, shape product overflow, NaN and -Inf weights, a weight whose
# shape does not fit config.json, an unknown block type, a non-UTF-8 config,
# a missing config. Input x_t: truncated, no tensor `x`, an integer dtype, a
# share file, random bytes on stdin; flags: a label beyond num_class_embeds
# and a timestep not on the schedule. Each: exit 1, exactly one stderr line
# "cdm-unet-step: ..." naming the file (or flag) and the problem, and with
# -o an existing output left byte-for-byte and mtime-untouched.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x $B/cdm-unet-step ] || { echo "FAIL: $B/cdm-unet-step not built"; exit 1; }
U=$B/cdm-unet-step
W=$M/diffusion_pytorch_model.safetensors
WN=diffusion_pytorch_model.safetensors
st_header $W >"$T/h" && st_data $W >"$T/d" || { echo "FAIL: cannot split $W"; exit 1; }
L=$(st_hdr_len $W) S=$(wc -c <$W)
ENT=$(grep -o '"conv_in.bias":{[^}]*}' "$T/h")
A=$(echo "$ENT" | sed -n 's/.*"data_offsets":\[\([0-9]*\),[0-9]*\].*/\1/p')
E=$(echo "$ENT" | sed -n 's/.*"data_offsets":\[[0-9]*,\([0-9]*\)\].*/\1/p')
[ -n "$A" ] && [ -n "$E" ] || { echo "FAIL: conv_in.bias not found in $W"; exit 1; }
N=$(( (E - A) / 4 ))

$B/cdm-share -o "$T/in" --input --label 1 --seed 3 --dump-noise "$T/xT" $M 2>"$T/err" ||
	{ echo "FAIL: cdm-share --dump-noise: $(cat "$T/err")"; exit 1; }
TS=$($U -m $M --steps 2 --timesteps | head -n 1)
[ -n "$TS" ] || { echo "FAIL: no timesteps"; exit 1; }
run_cmd $U -m $M -t $TS --steps 2 --label 1 -o "$T/ok" "$T/xT"
assert_exit 0 "valid step"

case_dir() { rm -rf "$T/$1" && mkdir "$T/$1" && cp $M/config.json $M/scheduler_config.json $W "$T/$1/"; }
# step NAME FILE-PATTERN PATTERN [MODEL [INPUT [FLAGS...]]]: a refused step
step() {
	local name=$1 fpat=$2 pat=$3 mo=${4:-$T/$1} in=${5:-$T/xT}
	[ $# -ge 5 ] && shift 5 || shift $#
	keep_file "$T/kept"
	fails 1 "$name" "$fpat" "$pat" -- $U -m "$mo" -t $TS --steps 2 --label 1 -o "$T/kept" "$@" "$in"
	assert_kept "$T/kept" "$name"
	run_cmd $U -m "$mo" -t $TS --steps 2 --label 1 -o "$T/new" "$@" "$in"
	assert_exit 1 "$name (new output)"
	assert_absent "$name" "$T/new"
}

# ---- model -----------------------------------------------------------------------------------
case_dir cut
head -c $((8 + L + A + 2)) $W >"$T/cut/$WN"
step cut "cut/$WN" "beyond|data is|hole"
case_dir hdrlen
{ le64 $((S * 2)); tail -c +9 $W; } >"$T/hdrlen/$WN"
step hdrlen "hdrlen/$WN" "header length $((S * 2)) exceeds"
case_dir overflow
sed "s/\"conv_in.bias\":{[^}]*}/\"conv_in.bias\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,$N],\"data_offsets\":[$A,$E]}/" \
	"$T/h" >"$T/h.ovf"
st_build "$T/h.ovf" "$T/d" >"$T/overflow/$WN"
step overflow "overflow/$WN" "conv_in.bias.*overflow"
for v in nan:'\000\000\300\177':NaN ninf:'\000\000\200\377':infinite; do
	name=${v%%:*} bytes=${v#*:} what=${bytes#*:} bytes=${bytes%:*}
	case_dir $name
	cp "$T/d" "$T/d.$name"
	printf "$bytes" | dd of="$T/d.$name" bs=1 seek=$((A + 4)) conv=notrunc 2>/dev/null
	st_build "$T/h" "$T/d.$name" >"$T/$name/$WN"
	step $name "$name/$WN" "conv_in.bias.*element 1 is $what"
done
case_dir chans
sed 's/"in_channels": *[0-9]*/"in_channels": 3/' $M/config.json >"$T/chans/config.json"
step chans "chans/$WN" "conv_in.weight.*shape \[[0-9]+,1,3,3\], expected \[[0-9]+,3,3,3\]"
case_dir block
sed 's/"DownBlock2D"/"FancyDownBlock2D"/' $M/config.json >"$T/block/config.json"
step block "block/config.json" "FancyDownBlock2D"
case_dir utf8
printf '{"_class_name": "UNet2DModel", "x\377": 1}' >"$T/utf8/config.json"
step utf8 "utf8/config.json" "0xff|UTF-8"
case_dir noconf
rm "$T/noconf/config.json"
step noconf "noconf" "config.json"

# ---- input and flags -------------------------------------------------------------------------------
head -c $(( $(wc -c <"$T/xT") - 100 )) "$T/xT" >"$T/xcut"
step "x_t cut" "xcut" "beyond|data is" $M "$T/xcut"
st_header "$T/xT" | sed 's/"x":/"y":/' >"$T/xh.y"
st_data "$T/xT" >"$T/xd"
st_build "$T/xh.y" "$T/xd" >"$T/xy"
step "no x" "xy" "no tensor 'x'" $M "$T/xy"
st_header "$T/xT" | sed 's/"F32"/"I32"/' >"$T/xh.i"
st_build "$T/xh.i" "$T/xd" >"$T/xi"
step "int x" "xi" "I32" $M "$T/xi"
step "share as x" "in\.0" "no tensor 'x'" $M "$T/in.0"
step "label" "--label" "12 out of range" $M "$T/xT" --label 12
step "timestep" "timestep 7" "not one of" $M "$T/xT" -t 7
head -c 200 /dev/urandom >"$T/rand"
fails 1 "random stdin" "stdin" "too short|exceeds|JSON|header" -- \
	$U -m $M -t $TS --steps 2 --label 1 -o "$T/new" <"$T/rand"
assert_absent "random stdin" "$T/new"

# a NaN in x_t is computed through (plaintext reference), flagged if it is
st_data "$T/xT" >"$T/xd.nan"
printf '\000\000\300\177' | dd of="$T/xd.nan" bs=1 seek=8 conv=notrunc 2>/dev/null
st_header "$T/xT" >"$T/xh"
st_build "$T/xh" "$T/xd.nan" >"$T/xnan"
keep_file "$T/kept"
fails 1 "NaN x_t" "xnan: tensor 'x': element 2 is NaN" -- \
	$U -m $M -t $TS --steps 2 --label 1 -o "$T/kept" "$T/xnan"
assert_kept "$T/kept" "NaN x_t"
fails 1 "NaN x_t (new output)" "xnan: tensor 'x': element 2 is NaN" -- \
	$U -m $M -t $TS --steps 2 --label 1 -o "$T/new" "$T/xnan"
assert_absent "NaN x_t" "$T/new"
# -Inf in the step noise of DDPM
printf '\000\000\200\377' | dd of="$T/xd.nan" bs=1 seek=8 conv=notrunc 2>/dev/null
st_build "$T/xh" "$T/xd.nan" >"$T/zinf"
fails 1 "Inf noise" "zinf: tensor 'x': element 2 is infinite" -- \
	$U -m $M -t $TS --steps 2 --label 1 --sampler ddpm --noise "$T/zinf" -o "$T/new" "$T/xT"
assert_absent "Inf noise" "$T/new"

finish "hostile cdm-unet-step inputs"
