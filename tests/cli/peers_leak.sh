#!/bin/sh
# What the parties print and write besides shares carries no secret. Two
# real secure runs (3 cdm-party processes, 2 DDIM steps, not quiet) with
# different secrets (label 3 / seed 5 against label 8 / seed 77):
#  - each party's --stats JSON is identical between the two runs once the
#    timing fields (seconds, peak_rss_bytes) are removed: bytes, rounds and
#    the per-layer breakdown do not depend on the secret;
#  - stderr is identical between the runs (after the same timing filter);
#  - none of the first 32 x_T values (as %.4f and %.3g) nor the label
#    appears in the stats or stderr;
#  - input, model and output share files are created with mode 0600.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x $B/cdm-party ] || { echo "FAIL: $B/cdm-party not built"; exit 1; }
MS=$(model_shares) || exit 1

for r in a b; do
	case $r in a) lab=3 seed=5 ;; b) lab=8 seed=77 ;; esac
	$B/cdm-share -o "$T/$r.x" --input --label $lab --seed $seed --dump-noise "$T/$r.xT" $M \
		2>"$T/err" || { bad "share input $r: $(cat "$T/err")"; continue; }
	port=$(free_ports 3)
	for i in 0 1 2; do
		(exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$MS.$i" \
			--input "$T/$r.x.$i" -o "$T/$r.out.$i" --steps 2 --timeout 10 \
			--stats "$T/$r.stats.$i.json" 2>"$T/$r.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	trio_ok "run $r" "$T/$r.err"
done

timing_free() { grep -vE '"(seconds|peak_rss_bytes)"' "$1" | sed -E 's/[0-9]+\.[0-9]+ ?s\b/T s/g'; }
for i in 0 1 2; do
	[ -s "$T/a.stats.$i.json" ] || { bad "no stats from party $i"; continue; }
	timing_free "$T/a.stats.$i.json" >"$T/a.s"
	timing_free "$T/b.stats.$i.json" >"$T/b.s"
	grep -q '"bytes_sent"' "$T/a.s" || bad "stats $i lack bytes_sent"
	cmp -s "$T/a.s" "$T/b.s" || bad "party $i: stats depend on the secret: $(diff "$T/a.s" "$T/b.s" | head -5)"
	timing_free "$T/a.err.$i" >"$T/a.e"
	timing_free "$T/b.err.$i" >"$T/b.e"
	cmp -s "$T/a.e" "$T/b.e" || bad "party $i: stderr depends on the secret: $(diff "$T/a.e" "$T/b.e" | head -5)"
	grep -qi label "$T/a.stats.$i.json" && bad "stats $i mention the label"
done

# the first 32 values of each x_T, in the forms a printf would use
for r in a b; do
	off=$((8 + $(st_hdr_len "$T/$r.xT")))
	od -An -v -tf4 -j $off -N 128 "$T/$r.xT" | tr -s ' ' '\n' | grep -v '^$' |
		awk '{ printf "%.4f\n%.3g\n", $1, $1 }' | grep -vE '^-?0\.0*$|^-?0$' >"$T/$r.vals"
	[ "$(wc -l <"$T/$r.vals")" -ge 32 ] || bad "could not read x_T values of run $r"
	for f in "$T"/$r.stats.*.json "$T"/$r.err.*; do
		# whole numbers only (-w), timing fields removed: a run time of
		# 0.2551 s must not pass for the x_T value 0.255
		hit=$(timing_free "$f" | grep -wF -f "$T/$r.vals" | head -n 1)
		[ -n "$hit" ] && bad "$(basename "$f") contains an x_T value: $hit"
	done
done

for f in "$T"/a.x.0 "$T"/a.x.2 "$T"/a.out.0 "$T"/a.out.1 "$T"/b.out.2 "$MS.1"; do
	[ "$(stat -c %a "$f" 2>/dev/null)" = 600 ] || bad "$f has mode $(stat -c %a "$f"), expected 600"
done

finish "no secret in stats, logs or file modes"
