#!/bin/sh
# Hostile share files given to cdm-reveal, from two real secure runs (a, b)
# of the bundled model (3 processes, 1 step each): shares of different
# sharings (with two and with three files), the same party twice (same path,
# and a copy under another name), an input share and a model share instead of
# an output share, a single share, a share truncated at the data, a share
# whose overlapping component was altered (two shares: party 0's x_1 against
# party 1's x_1), an unwritable output directory. Each: exit 1, exactly one
# stderr line "cdm-reveal: ..." naming the file(s) and the problem, and an
# existing output (PNG and safetensors) left byte-for-byte and mtime-
# untouched; no new output file. The genuine shares then reveal fine.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal; do
	[ -x $B/$t ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
MS=$(model_shares) || exit 1
input_shares "$T/x" 4 21 || exit 1
for r in a b; do
	port=$(free_ports 3)
	for i in 0 1 2; do party_bg $i $port "$MS.$i" "$T/x.$i" "$T/$r.$i" "$T/$r.err.$i"; done
	trio_ok "run $r" "$T/$r.err"
	[ $fail = 0 ] || finish x
done

R=$B/cdm-reveal
# refused NAME PATTERN SHARES...: for a PNG and a safetensors output
refused() {
	local name=$1 pat=$2 out
	shift 2
	for out in "$T/kept.png" "$T/kept.safetensors"; do
		keep_file "$out"
		fails 1 "$name" "$pat" -- $R -o "$out" "$@"
		assert_kept "$out" "$name"
	done
	fails 1 "$name (new output)" "$pat" -- $R -o "$T/new.png" "$@"
	assert_absent "$name" "$T/new.png"
}

refused "different sharings" "a\.0 and .*b\.1 belong to different sharings" "$T/a.0" "$T/b.1"
refused "different sharings (3)" "different sharings" "$T/a.0" "$T/a.1" "$T/b.2"
refused "same path twice" "a\.1.*(given twice|both party 1)" "$T/a.1" "$T/a.1"
cp "$T/a.1" "$T/copy.1"
refused "same party twice" "a\.1 and .*copy\.1 are both party 1's share" "$T/a.1" "$T/copy.1"
refused "input share" "x\.1: is an input share, expected an output share" "$T/a.0" "$T/x.1"
refused "model share" "m\.2: is a model share, expected an output share" "$T/a.0" "$MS.2"
refused "one share" "one share reveals nothing" "$T/a.0"
SZ=$(wc -c <"$T/a.1")
head -c $((SZ - 16)) "$T/a.1" >"$T/cut.1"
refused "truncated share" "cut\.1: .*(beyond|data is|hole)" "$T/a.0" "$T/cut.1"
# party 1 holds (x_1, x_2) as x.a, x.b; party 0 holds (x_0, x_1): alter x_1 of party 1
cp "$T/a.1" "$T/alt.1"
printf 'Z' | dd of="$T/alt.1" bs=1 seek=$((8 + $(st_hdr_len "$T/a.1") + 40)) conv=notrunc 2>/dev/null
cmp -s "$T/a.1" "$T/alt.1" && bad "altering a.1 had no effect"
refused "altered share" "alt\.1.*disagree on component x_1" "$T/a.0" "$T/alt.1"
refused "altered share (3)" "alt\.1.*disagree" "$T/a.0" "$T/alt.1" "$T/a.2"
fails 1 "no such directory" "nodir/r\.png" -- $R -o "$T/nodir/r.png" "$T/a.0" "$T/a.1"

# the genuine shares still reveal, to both formats, identically from any pair
run_cmd $R -o "$T/ok01.safetensors" "$T/a.0" "$T/a.1"
assert_exit 0 "reveal a.0 a.1"
run_cmd $R -o "$T/ok12.safetensors" "$T/a.2" "$T/a.1"
assert_exit 0 "reveal a.2 a.1"
cmp -s "$T/ok01.safetensors" "$T/ok12.safetensors" || bad "pairs (0,1) and (1,2) reveal differently"
run_cmd $R -o "$T/ok.png" "$T/a.0" "$T/a.2"
assert_exit 0 "reveal to PNG"
[ "$(head -c 4 "$T/ok.png" | od -An -c | tr -d ' ')" = "211PNG" ] || bad "ok.png is not a PNG"

finish "hostile cdm-reveal inputs"
