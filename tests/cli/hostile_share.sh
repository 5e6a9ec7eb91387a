#!/bin/sh
# Hostile model folders and noise files given to cdm-share. Every case is
# built inside the test from the bundled model with shell tools only (dd,
# head, sed, printf): truncation at every section of the safetensors file
# (length field, header, data start, mid-data, last byte, zstd stream),
# header length beyond the file and of 2^60, a header JSON nested 1000 deep
# or with a non-UTF-8 tensor name, overlapping / reversed / holey
# offsets, dtype and shape against the byte size, shape product overflow,
# negative dims, unknown dtype, duplicate names, trailing bytes, NaN/+Inf/-Inf
# weights, non-UTF-8 / deeply nested / truncated / non-object config.json,
# an unknown block type, a missing config or weight file, weights that do
# not fit config.json (a tensor of another shape, a missing tensor, an extra
# tensor the model never binds), and for --input a
# NaN noise tensor and a noise tensor of the wrong shape.
# Each: exit 1, exactly one stderr line "cdm-share: ..." naming the file and
# the problem, no PREFIX.* created (nor a temporary), and an existing
# PREFIX.1 left byte-for-byte and mtime-untouched.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x $B/cdm-share ] || { echo "FAIL: $B/cdm-share not built"; exit 1; }
W=$M/diffusion_pytorch_model.safetensors
WN=diffusion_pytorch_model.safetensors
st_header $W >"$T/h" && st_data $W >"$T/d" || { echo "FAIL: cannot split $W"; exit 1; }
L=$(st_hdr_len $W) S=$(wc -c <$W)
# the tensor we corrupt and its offsets [A, E)
ENT=$(grep -o '"conv_in.bias":{[^}]*}' "$T/h")
A=$(echo "$ENT" | sed -n 's/.*"data_offsets":\[\([0-9]*\),[0-9]*\].*/\1/p')
E=$(echo "$ENT" | sed -n 's/.*"data_offsets":\[[0-9]*,\([0-9]*\)\].*/\1/p')
[ -n "$A" ] && [ -n "$E" ] && [ $A -ge 4 ] || { echo "FAIL: conv_in.bias not found in $W"; exit 1; }
N=$(( (E - A) / 4 ))

# case NAME: a fresh copy of the model folder in $T/NAME
case_dir() {
	rm -rf "$T/$1" && mkdir "$T/$1" && cp $M/config.json $M/scheduler_config.json $W "$T/$1/"
}
# weights NAME HEADER_FILE DATA_FILE: replace the weight file of case NAME
weights() { st_build "$2" "$3" >"$T/$1/$WN"; }
# entry NAME JSON: conv_in.bias's header entry becomes {JSON}
entry() {
	case_dir "$1"
	sed "s/\"conv_in.bias\":{[^}]*}/\"conv_in.bias\":{$2}/" "$T/h" >"$T/h.$1"
	cmp -s "$T/h" "$T/h.$1" && bad "$1: the header edit did not apply"
	weights "$1" "$T/h.$1" "$T/d"
}
# refused NAME FILE PATTERN [ARGS...]: cdm-share [ARGS] on case NAME fails
# with one line naming FILE (a path suffix) and PATTERN; nothing written
refused() {
	local name=$1 file=$2 pat=$3
	shift 3
	keep_file "$T/out.1"
	fails 1 "$name" "$file" "$pat" -- $B/cdm-share -o "$T/out" "$@" "$T/$name"
	assert_absent "$name" "$T/out.0" "$T/out.2"
	assert_kept "$T/out.1" "$name"
}

# ---- the unmodified copy is accepted (so each refusal is due to its edit) ----------------
case_dir valid
weights valid "$T/h" "$T/d"
cmp -s $W "$T/valid/$WN" || bad "rebuilding $W from its parts changed it"
run_cmd $B/cdm-share -o "$T/ok" "$T/valid"
assert_exit 0 "valid copy"
rm -f "$T"/ok.*

# ---- truncation at every section -------------------------------------------------------
for off in 0 5 8 100 $((8 + L - 1)) $((8 + L)) $((8 + L + A + 2)) $((S - 1)); do
	case_dir trunc$off
	head -c $off $W >"$T/trunc$off/$WN"
	case $off in
	0|5) pat="too short" ;;
	8|100|$((8 + L - 1))) pat="header length $L exceeds the file" ;;
	*) pat="beyond the data|data is [0-9]+ bytes|hole" ;;
	esac
	refused trunc$off $WN "$pat"
done
case_dir zst
zstd -q -c $W | head -c $((S / 4)) >"$T/zst/$WN"
refused zst $WN "zstd"

# ---- header length -----------------------------------------------------------------------
case_dir hdrlen
{ le64 $((S - 7)); tail -c +9 $W; } >"$T/hdrlen/$WN"
refused hdrlen $WN "header length $((S - 7)) exceeds the file"
case_dir hdrhuge
{ le64 1152921504606846976; tail -c +9 $W; } >"$T/hdrhuge/$WN"
refused hdrhuge $WN "header length 1152921504606846976"
case_dir hdrjunk
printf 'not json at all!' >"$T/hj"
weights hdrjunk "$T/hj" "$T/d"
refused hdrjunk $WN "not a JSON object|not valid JSON"
# the header JSON itself: nested 1000 deep, and a tensor name that is not UTF-8
case_dir hdrdeep
{ printf '{"x":'; i=0; while [ $i -lt 500 ]; do printf '[['; i=$((i + 1)); done
  i=0; while [ $i -lt 500 ]; do printf ']]'; i=$((i + 1)); done; printf '}'; } >"$T/hd"
weights hdrdeep "$T/hd" "$T/d"
refused hdrdeep $WN "nested deeper than"
case_dir hdrutf8
sed 's/"conv_in\.bias"/"conv_in.b\xff\xfes"/' "$T/h" >"$T/hu"
cmp -s "$T/h" "$T/hu" && bad "hdrutf8: the header edit did not apply"
weights hdrutf8 "$T/hu" "$T/d"
refused hdrutf8 $WN "decode byte 0xff|UTF-8"

# ---- offsets -------------------------------------------------------------------------------
entry overlap "\"dtype\":\"F32\",\"shape\":[$N],\"data_offsets\":[$((A + 4)),$((E + 4))]"
refused overlap $WN "conv_in.bias.*(overlap|hole)|(overlap|hole).*conv_in.bias"
entry reversed "\"dtype\":\"F32\",\"shape\":[$N],\"data_offsets\":[$E,$A]"
refused reversed $WN "conv_in.bias.*end before they begin"
entry beyond "\"dtype\":\"F32\",\"shape\":[$N],\"data_offsets\":[$((S * 4)),$((S * 4 + E - A))]"
refused beyond $WN "conv_in.bias|hole|beyond"
case_dir missing
sed 's/"conv_in.bias":{[^}]*},//' "$T/h" >"$T/h.missing"
weights missing "$T/h.missing" "$T/d"
refused missing $WN "hole in the data: bytes \[$A,$E\)"
case_dir trailing
cp $W "$T/trailing/$WN" && printf 'junk' >>"$T/trailing/$WN"
refused trailing $WN "tensors end at data offset"
case_dir dup
sed 's/"conv_in.bias":{\([^}]*\)}/"conv_in.bias":{\1},"conv_in.bias":{\1}/' "$T/h" >"$T/h.dup"
weights dup "$T/h.dup" "$T/d"
refused dup $WN "duplicate"

# ---- dtype, shape and size -------------------------------------------------------------------
entry f64 "\"dtype\":\"F64\",\"shape\":[$N],\"data_offsets\":[$A,$E]"
refused f64 $WN "conv_in.bias.*F64 needs $((8 * N))"
entry shape "\"dtype\":\"F32\",\"shape\":[$((N + 1))],\"data_offsets\":[$A,$E]"
refused shape $WN "conv_in.bias.*needs $((4 * N + 4))"
entry int "\"dtype\":\"I32\",\"shape\":[$N],\"data_offsets\":[$A,$E]"
refused int $WN "conv_in.bias.*I32"
entry qdtype "\"dtype\":\"Q7\",\"shape\":[$N],\"data_offsets\":[$A,$E]"
refused qdtype $WN "conv_in.bias.*unsupported dtype"
entry overflow "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,$N],\"data_offsets\":[$A,$E]"
refused overflow $WN "conv_in.bias.*overflow"
entry overflow2 "\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[$A,$E]"
refused overflow2 $WN "conv_in.bias.*overflow"
entry negdim "\"dtype\":\"F32\",\"shape\":[-$N],\"data_offsets\":[$A,$E]"
refused negdim $WN "conv_in.bias.*non-negative"
entry bigoff "\"dtype\":\"F32\",\"shape\":[$N],\"data_offsets\":[18446744073709551600,$E]"
refused bigoff $WN "too big|conv_in.bias"

# ---- non-finite weights: element 1 of conv_in.bias -------------------------------------------
for v in nan:'\000\000\300\177':NaN inf:'\000\000\200\177':infinite ninf:'\000\000\200\377':infinite; do
	name=${v%%:*} bytes=${v#*:} what=${bytes#*:} bytes=${bytes%:*}
	case_dir $name
	cp "$T/d" "$T/d.$name"
	printf "$bytes" | dd of="$T/d.$name" bs=1 seek=$((A + 4)) conv=notrunc 2>/dev/null
	weights $name "$T/h" "$T/d.$name"
	refused $name $WN "conv_in.bias.*element 1 is $what"
done

# ---- config.json -------------------------------------------------------------------------------
CN=config.json
case_dir utf8
printf '{"_class_name": "UNet2DModel", "sample_size": 28, "x\377\376": 1}' >"$T/utf8/$CN"
refused utf8 $CN "decode byte 0xff|UTF-8"
case_dir deep
{ printf '{"a":'; i=0; while [ $i -lt 3000 ]; do printf '[['; i=$((i + 1)); done
  i=0; while [ $i -lt 3000 ]; do printf ']]'; i=$((i + 1)); done; printf '}'; } >"$T/deep/$CN"
refused deep $CN "depth"
case_dir cut
head -c 60 $M/config.json >"$T/cut/$CN"
refused cut $CN "premature|expected|end of"
case_dir notobj
echo '[1, 2]' >"$T/notobj/$CN"
refused notobj $CN "not a JSON object"
case_dir block
sed 's/"DownBlock2D"/"FancyDownBlock2D"/' $M/config.json >"$T/block/$CN"
cmp -s $M/config.json "$T/block/$CN" && bad "block: no DownBlock2D in $M/config.json"
refused block $CN "FancyDownBlock2D.*not supported"
case_dir badsize
sed 's/"sample_size": *[0-9]*/"sample_size": 99999999999/' $M/config.json >"$T/badsize/$CN"
refused badsize $CN "sample_size"
case_dir noconf
rm "$T/noconf/$CN"
refused noconf noconf "config.json"
case_dir noweights
rm "$T/noweights/$WN"
refused noweights noweights "$WN"

# ---- weights against config.json: every tensor the UNet binds, no other ------------------------
# in_channels 3, the weights have 1: named file, tensor, actual and expected shape
case_dir fit
sed 's/"in_channels": *[0-9]*/"in_channels": 3/' $M/config.json >"$T/fit/$CN"
refused fit $WN "conv_in\.weight': shape \[[0-9]+,1,3,3\], expected \[[0-9]+,3,3,3\]"
# a wider first block: the first weight whose shape changes is named
case_dir fitwide
C0=$(tr -d ' \n' <$M/config.json | sed -n 's/.*"block_out_channels":\[\([0-9]*\).*/\1/p')
tr -d ' \n' <$M/config.json | sed "s/\"block_out_channels\":\[$C0,/\"block_out_channels\":[$((C0 * 2)),/" \
	>"$T/fitwide/$CN"
grep -q "\"block_out_channels\":\[$((C0 * 2))," "$T/fitwide/$CN" || bad "fitwide: the config edit did not apply"
refused fitwide $WN "conv_in\.weight': shape \[$C0,1,3,3\], expected \[$((C0 * 2)),1,3,3\]"
# conv_in.bias renamed (same length): missing for the model, and extra
case_dir fitmiss
sed 's/"conv_in\.bias"/"conv_in\.bixs"/' "$T/h" >"$T/h.fitmiss"
weights fitmiss "$T/h.fitmiss" "$T/d"
refused fitmiss $WN "no tensor 'conv_in\.bias'"
# one tensor more than the model binds (appended to the data)
case_dir fitextra
DL=$(wc -c <"$T/d")
sed "s/^{/{\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[$DL,$((DL + 8))]},/" \
	"$T/h" >"$T/h.fitextra"
{ cat "$T/d"; printf '\000\000\200\077\000\000\200\077'; } >"$T/d.fitextra"
weights fitextra "$T/h.fitextra" "$T/d.fitextra"
refused fitextra $WN "tensor 'extra\.weight' is not a weight of the model .*config\.json"

# ---- --input: the noise tensor x_T ---------------------------------------------------------------
# a valid x_T from --dump-noise, then a NaN in it and a wrong shape
run_cmd $B/cdm-share -o "$T/in" --input --label 1 --seed 3 --dump-noise "$T/xT" $M
assert_exit 0 "input share with --dump-noise"
rm -f "$T"/in.*
XL=$(st_hdr_len "$T/xT")
st_header "$T/xT" >"$T/xh" && st_data "$T/xT" >"$T/xd"
cp "$T/xd" "$T/xd.nan"
printf '\000\000\300\177' | dd of="$T/xd.nan" bs=1 seek=8 conv=notrunc 2>/dev/null
st_build "$T/xh" "$T/xd.nan" >"$T/xT.nan"
keep_file "$T/in.1"
fails 1 "noise NaN" "NaN|finite" -- \
	$B/cdm-share -o "$T/in" --input --label 1 --noise "$T/xT.nan" $M
grep -q "xT\.nan: tensor 'x': element 2 is NaN" "$T/stderr" ||
	bad "noise NaN: the message does not name the file, tensor and element: $(cat "$T/stderr")"
assert_absent "noise NaN" "$T/in.0" "$T/in.2"
assert_kept "$T/in.1" "noise NaN"
# same bytes, shape [B,C,2,H*W/2]: right size, wrong shape
hw=$(sed -n 's/.*"shape":\[[0-9]*,[0-9]*,\([0-9]*\),\([0-9]*\)\].*/\1 \2/p' "$T/xh")
set -- $hw
if [ $# = 2 ] && [ $(($1 * $2 % 2)) = 0 ]; then
	sed "s/\"shape\":\[\([0-9]*\),\([0-9]*\),$1,$2\]/\"shape\":[\1,\2,2,$(($1 * $2 / 2))]/" \
		"$T/xh" >"$T/xh.bad"
	st_build "$T/xh.bad" "$T/xd" >"$T/xT.shape"
	fails 1 "noise shape" "xT.shape" "shape" -- \
		$B/cdm-share -o "$T/in" --input --label 1 --noise "$T/xT.shape" $M
	assert_absent "noise shape" "$T/in.0" "$T/in.2"
	assert_kept "$T/in.1" "noise shape"
else
	bad "cannot read the shape of x_T from its header: $(cat "$T/xh")"
fi
[ "$XL" -gt 0 ] || bad "x_T header length"

finish "hostile cdm-share inputs"
