#!/bin/sh
# Hostile share files given to cdm-party. Local refusals (one process, no
# peer is ever contacted): another party's share, a model share given as the
# input and an input share as the model, the same file as model and input,
# a plaintext weight file or a directory instead of a share, share files
# truncated in the header, at the data, mid-data and by one byte, a
# truncated zstd share. Three-process refusals (the parties compare what
# they hold before computing): model shares or input shares from different
# sharings, an input share of another batch size, model and input shares
# with different fraction bits, a model whose weights do not fit its
# config.json, a model share carrying an unsupported scheduler config.
# Each: exit 1, exactly one stderr line "cdm-party: ..." naming the file
# (or the disagreeing field) and the problem, no output file, and an
# existing output file left byte-for-byte and mtime-untouched.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party; do
	[ -x $B/$t ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
MS=$(model_shares) || exit 1
input_shares "$T/x" 3 11 && input_shares "$T/y" 3 12 || exit 1

# local NAME PATTERN FILE-PATTERN MODEL INPUT: party 0 refuses before connecting
local_refusal() {
	local name=$1 pat=$2 fpat=$3 mo=$4 in=$5 port
	port=$(free_ports 3)
	keep_file "$T/kept.0"
	fails 1 "$name" "$pat" "$fpat" -- $B/cdm-party --id 0 --peers "$(peers_list $port)" \
		--model "$mo" --input "$in" -o "$T/kept.0" -q --steps 1 --timeout 3
	assert_kept "$T/kept.0" "$name"
	fails 1 "$name (new output)" "$pat" -- $B/cdm-party --id 0 --peers "$(peers_list $port)" \
		--model "$mo" --input "$in" -o "$T/new.0" -q --steps 1 --timeout 3
	assert_absent "$name" "$T/new.0"
}

# ---- local refusals ------------------------------------------------------------------------
local_refusal "wrong party" "is party 1's share, expected party 0's" "x\.1" "$MS.0" "$T/x.1"
local_refusal "wrong party (model)" "is party 2's share, expected party 0's" "m\.2" "$MS.2" "$T/x.0"
local_refusal "model as input" "is a model share, expected an input share" "m\.0" "$MS.0" "$MS.0"
local_refusal "input as model" "is an input share, expected a model share" "x\.0" "$T/x.0" "$T/x.0"
local_refusal "plain weights as model" "share|metadata|format" "$(basename $M)/diffusion" \
	"$M/diffusion_pytorch_model.safetensors" "$T/x.0"
local_refusal "directory as model" "director|cannot|read" "$T" "$T" "$T/x.0"
MSZ=$(wc -c <"$MS.0") ML=$(st_hdr_len "$MS.0")
for off in 4 $((8 + ML / 2)) $((8 + ML)) $((8 + ML + (MSZ - ML) / 2)) $((MSZ - 1)); do
	# party 0's seed-derived model share stores no tensor data: cuts at or
	# past its end are no cuts (share_seeds.sh cuts party 1's data)
	[ $off -lt $MSZ ] || continue
	head -c $off "$MS.0" >"$T/mcut$off.0"
	local_refusal "model share cut at $off" "too short|exceeds|beyond|data is|hole" "mcut$off\.0" \
		"$T/mcut$off.0" "$T/x.0"
done
XSZ=$(wc -c <"$T/x.0")
head -c $((XSZ - 8)) "$T/x.0" >"$T/xcut.0"
local_refusal "input share cut" "beyond|data is|hole" "xcut\.0" "$MS.0" "$T/xcut.0"
zstd -q -c "$MS.0" | head -c $((MSZ / 8)) >"$T/mz.0"
local_refusal "truncated zstd share" "zstd" "mz\.0" "$T/mz.0" "$T/x.0"

# ---- three processes -----------------------------------------------------------------------
# three NAME "M0 M1 M2" "X0 X1 X2" PATTERN: every party exits 1 with one line
# matching PATTERN, leaves no output, and party 1's existing output is kept
three() {
	local name=$1 port i mo in
	port=$(free_ports 3)
	keep_file "$T/$name.out.1"
	for i in 0 1 2; do
		mo=$(echo $2 | cut -d' ' -f$((i + 1))) in=$(echo $3 | cut -d' ' -f$((i + 1)))
		party_bg $i $port "$mo" "$in" "$T/$name.out.$i" "$T/$name.err.$i" --timeout 5
	done
	for i in 0 1 2; do
		wait_party $i
		[ $rc = 1 ] || bad "$name: party $i exited $rc, expected 1: $(cat "$T/$name.err.$i")"
		assert_one_line "$T/$name.err.$i" "$name: party $i" "$4"
	done
	PIDS=""
	assert_absent "$name" "$T/$name.out.0" "$T/$name.out.2"
	assert_kept "$T/$name.out.1" "$name"
}

$B/cdm-share -o "$T/m2" $M 2>"$T/err" || bad "second model sharing: $(cat "$T/err")"
three model-sharings "$T/m2.0 $MS.1 $MS.2" "$T/x.0 $T/x.1 $T/x.2" "disagrees on model_sharing"
three input-sharings "$MS.0 $MS.1 $MS.2" "$T/x.0 $T/y.1 $T/x.2" "disagrees on input_sharing"
$B/cdm-share -o "$T/b2" --input --label 3 --batch 2 --seed 1 $M 2>"$T/err" ||
	bad "batch-2 input: $(cat "$T/err")"
three batch "$MS.0 $MS.1 $MS.2" "$T/x.0 $T/x.1 $T/b2.2" "disagrees on (input_sharing|batch)"
$B/cdm-share -o "$T/f16" --frac-bits 16 $M 2>"$T/err" || bad "16-bit model: $(cat "$T/err")"
three frac-bits "$T/f16.0 $T/f16.1 $T/f16.2" "$T/x.0 $T/x.1 $T/x.2" \
	"f16\.[0-2] has 16 fraction bits and .*x\.[0-2] 20"

# a model whose weights do not fit its config.json (in_channels 3, the
# weights have 1): cdm-share refuses the folder (hostile_share.sh), so the
# shares are made fit and their config metadata edited afterwards (same
# length, so only the header text changes); each party binds the weights
# to the config before computing and refuses
for i in 0 1 2; do
	st_header "$MS.$i" | sed 's/\\"in_channels\\": 1,/\\"in_channels\\": 3,/' >"$T/chh.$i"
	st_header "$MS.$i" | cmp -s - "$T/chh.$i" &&
		bad "weights-vs-config: the in_channels edit did not apply to $MS.$i"
	st_data "$MS.$i" >"$T/chd.$i"
	st_build "$T/chh.$i" "$T/chd.$i" >"$T/ch.$i"
done
three weights-vs-config "$T/ch.0 $T/ch.1 $T/ch.2" "$T/x.0 $T/x.1 $T/x.2" \
	"ch\.[0-2]: tensor 'conv_in\.weight': shape \[[0-9]+,1,3,3\], expected \[[0-9]+,3,3,3\]"

# an unsupported scheduler config rides along in the model share
mkdir "$T/sched" && cp $M/* "$T/sched/"
echo '{"beta_schedule": "cosine_xyz"}' >"$T/sched/scheduler_config.json"
if $B/cdm-share -o "$T/sc" "$T/sched" 2>"$T/err"; then
	three scheduler "$T/sc.0 $T/sc.1 $T/sc.2" "$T/x.0 $T/x.1 $T/x.2" \
		"sc\.[0-2]: .*beta_schedule.*cosine_xyz"
else
	assert_one_line "$T/err" "scheduler at cdm-share" "scheduler_config.*cosine_xyz"
fi

finish "hostile cdm-party inputs"
