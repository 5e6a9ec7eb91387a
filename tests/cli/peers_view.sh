#!/bin/sh
# One party's view carries no secret, measured on real processes. Two secure
# runs (three cdm-party processes, one DDIM step, plain TCP on loopback) with
# secrets that differ in everything secret:
#   A: the bundled model's weights, label 3, x_T from seed 5;
#   B: the same architecture with every weight 0, label 8, x_T from seed 77.
# Party 1's view is its share files (model, input, output: the tensor data)
# and every byte it received from the other two (tapped below lib/net by an
# LD_PRELOAD readv shim, tests/cli/peers_view_tap.c). Asserted:
#   - the received byte counts are equal (traffic does not depend on them);
#   - A against B, for the received bytes pooled and per 1 MiB slice, and
#     for each share file's data: a two-sample chi-square on byte values
#     stays below the z = 6 quantile (tests/cli/peers_view_chi.c; ratio < 1);
#   - the statistic can fail: B's received bytes with the plaintext weights
#     of A written over 64 KiB of one slice (what a protocol sending weights
#     in the clear would show) are flagged (ratio > 1), as are A's plaintext
#     weights against party 1's model share.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party; do
	[ -x $B/$t ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
CC=${CC:-cc}
$CC -shared -fPIC -O2 -o "$T/tap.so" tests/cli/peers_view_tap.c -ldl 2>"$T/cc.err" &&
	$CC -O2 -o "$T/chi" tests/cli/peers_view_chi.c -lm 2>>"$T/cc.err" ||
	{ echo "FAIL: cannot build the view helpers: $(cat "$T/cc.err")"; exit 1; }
MS=$(model_shares) || exit 1
W=$M/diffusion_pytorch_model.safetensors
SLICE=1048576

# model B: the header of $M's weights, every data byte zero (all weights 0.0)
mkdir "$T/zero" && cp $M/config.json $M/scheduler_config.json "$T/zero/"
st_header $W >"$T/wh" && st_data $W >"$T/wd"
head -c "$(wc -c <"$T/wd")" /dev/zero >"$T/zd"
st_build "$T/wh" "$T/zd" >"$T/zero/diffusion_pytorch_model.safetensors"
$B/cdm-share -o "$T/mz" "$T/zero" 2>"$T/err" || { echo "FAIL: zero model: $(cat "$T/err")"; exit 1; }
$B/cdm-share -o "$T/xa" --input --label 3 --seed 5 $M 2>"$T/err" &&
	$B/cdm-share -o "$T/xb" --input --label 8 --seed 77 $M 2>>"$T/err" ||
	{ echo "FAIL: input shares: $(cat "$T/err")"; exit 1; }

# run NAME MODEL_PREFIX INPUT_PREFIX: party 1 tapped into $T/NAME.tap
run() {
	local name=$1 mo=$2 in=$3 port i
	port=$(free_ports 3)
	for i in 0 1 2; do
		if [ $i = 1 ]; then
			# (an ASan build wants its runtime first; the shim only wraps readv)
			(export LD_PRELOAD="$T/tap.so" CDM_TAP="$T/$name.tap" \
				ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
			 exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$mo.$i" \
				--input "$in.$i" -o "$T/$name.out.$i" -q --steps 1 --timeout 20 \
				2>"$T/$name.err.$i") &
		else
			(exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$mo.$i" \
				--input "$in.$i" -o "$T/$name.out.$i" -q --steps 1 --timeout 20 \
				2>"$T/$name.err.$i") &
		fi
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	trio_ok "run $name" "$T/$name.err"
}
run A "$MS" "$T/xa"
run B "$T/mz" "$T/xb"

[ $fail = 0 ] || finish "one party's view"
la=$(wc -c <"$T/A.tap" 2>/dev/null || echo 0) lb=$(wc -c <"$T/B.tap" 2>/dev/null || echo 0)
[ "$la" -gt $((4 * SLICE)) ] || bad "party 1 received only $la bytes (tap broken?)"
[ "$la" = "$lb" ] || bad "party 1 received $la bytes in run A, $lb in run B"

# below NAME FILE_A FILE_B: both chi-square ratios < 1
below() {
	local r
	r=$("$T/chi" "$2" "$3" $SLICE) || { bad "$1: chi failed"; return; }
	echo "$1: $r"
	echo "$r" | awk '{ exit !($2 < 1 && $4 < 1) }' || bad "$1: A and B are distinguishable: $r"
}
# above NAME FILE_A FILE_B: the pooled or the worst slice ratio > 1
above() {
	local r
	r=$("$T/chi" "$2" "$3" $SLICE) || { bad "$1: chi failed"; return; }
	echo "$1 (control): $r"
	echo "$r" | awk '{ exit !($2 > 1 || $4 > 1) }' || bad "$1: the control was not flagged: $r"
}
below "received bytes" "$T/A.tap" "$T/B.tap"
for f in "$MS.1:$T/mz.1:model share" "$T/xa.1:$T/xb.1:input share" \
	 "$T/A.out.1:$T/B.out.1:output share"; do
	a=${f%%:*} rest=${f#*:}
	b=${rest%%:*} what=${rest#*:}
	st_data "$a" >"$T/da" && st_data "$b" >"$T/db"
	below "$what data" "$T/da" "$T/db"
done

# controls: plaintext weights of A spliced into B's view, and against a share
cp "$T/B.tap" "$T/leak.tap"
head -c 65536 "$T/wd" | dd of="$T/leak.tap" bs=1 seek=$((2 * SLICE + 4096)) conv=notrunc 2>/dev/null
above "weights in the clear in B's view" "$T/A.tap" "$T/leak.tap"
st_data "$MS.1" >"$T/da"
above "plaintext weights vs party 1's model share" "$T/wd" "$T/da"

finish "one party's view"
