#!/bin/sh
# Parties started a minute apart, with the default timeouts (no --timeout:
# a 120 s connect window, retries with backoff): parties 0 and 1 start,
# party 2 only 60 s later; all three finish with exit 0 and the image is
# the one of the same run started together (same test noise seed).
# Timing only, so it runs with the plain tools and is skipped with the
# sanitizer ones (make check's ASan pass) to save a minute.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
case "$B" in *asan*) echo "peers a minute apart: timing only, skipped with $B"; exit 0 ;; esac
MS=$(model_shares) || exit 1
input_shares "$T/x" 2 77 || exit 1
GAP=${CDM_PEERS_GAP:-60}
SEED=0f0e0d0c0b0a09080706050403020100

# run NAME GAP: parties 0, 1 now, party 2 after GAP seconds (default timeouts)
run() {
	local p i
	p=$(free_ports 3)
	for i in 0 1 2; do
		[ $i = 2 ] && [ "$2" -gt 0 ] && sleep "$2"
		(exec $B/cdm-party --id $i --peers "$(peers_list $p)" --model "$MS.$i" \
			--input "$T/x.$i" -o "$T/$1.$i" -q --steps 1 --test-noise-seed $SEED \
			2>"$T/$1.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	trio_ok "$1" "$T/$1.err"
}
t0=$(now_s)
run late $GAP
el=$(( $(now_s) - t0 ))
[ $el -ge "$GAP" ] || bad "late: done after ${el}s, before the ${GAP} s gap"
run together 0
$B/cdm-reveal -o "$T/late.st" "$T/late.0" "$T/late.1" 2>"$T/err" || bad "reveal late: $(cat "$T/err")"
$B/cdm-reveal -o "$T/together.st" "$T/together.1" "$T/together.2" 2>"$T/err" ||
	bad "reveal together: $(cat "$T/err")"
cmp -s "$T/late.st" "$T/together.st" || bad "party 2 a minute late: another image than together"
echo "party 2 started ${GAP} s after the others: done after ${el} s, same image"
finish "peers a minute apart"
