#!/bin/sh
# Network set-up failures and start order, with real cdm-party processes:
#  - own port already in use (a listener holds it): exit 2, "in use";
#  - an unresolvable peer host, and an unresolvable own (bind) host: exit 1
#    naming the host, at once (no retry loop);
#  - a bind address that is not ours: exit 2 naming it;
#  - bad --peers values (no port, port 0 / 70000, two entries): exit 1;
#  - a party alone: the listener (party 0) and the dialer (party 2) give up
#    after --timeout with exit 2, one line saying whom they waited for;
#  - the three parties started in reverse order 2 s apart, or 5 s apart with
#    the middle one first, succeed, and their outputs reveal to the same
#    image as a run started in order.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-party cdm-reveal; do
	[ -x $B/$t ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
FAKE=${FAKE:-build/tests/test_fakepeer}
MS=$(model_shares) || exit 1
input_shares "$T/x" 7 51 || exit 1

party() { # party I PEERS [flags]: one party in the foreground
	local i=$1 peers=$2
	shift 2
	$B/cdm-party --id $i --peers "$peers" --model "$MS.$i" --input "$T/x.$i" -o "$T/o.$i" -q \
		--steps 1 "$@"
}

# ---- port in use ------------------------------------------------------------------------
P=$(free_ports 3)
if [ -x "$FAKE" ]; then
	"$FAKE" serve $P silent 8 2>/dev/null &
	hog=$!
	PIDS="$PIDS $hog"
	sleep 0.3
	t0=$(now_s)
	fails 2 "port in use" "party 0: .*port $P.*in use|$P.*in use" -- party 0 "$(peers_list $P)" --timeout 3
	[ $(( $(now_s) - t0 )) -le 1 ] || bad "port in use: not refused at once"
	assert_absent "port in use" "$T/o.0"
	kill $hog 2>/dev/null; wait $hog 2>/dev/null
	PIDS=""
else
	bad "$FAKE not built: cannot hold a port"
fi

# ---- names and addresses ------------------------------------------------------------------
P=$(free_ports 3)
t0=$(now_s)
fails 1 "unresolvable peer" "cannot resolve host 'no-such-host\.invalid'" -- \
	party 1 "no-such-host.invalid:$P,127.0.0.1:$((P + 1)),127.0.0.1:$((P + 2))" --timeout 3
fails 1 "unresolvable own host" "cannot resolve host 'no-such-host\.invalid'" -- \
	party 0 "no-such-host.invalid:$P,127.0.0.1:$((P + 1)),127.0.0.1:$((P + 2))" --timeout 3
[ $(( $(now_s) - t0 )) -le 2 ] || bad "unresolvable hosts: not refused at once"
fails 2 "foreign bind address" "cannot listen on 192\.0\.2\.1:$P" -- \
	party 0 "192.0.2.1:$P,127.0.0.1:$((P + 1)),127.0.0.1:$((P + 2))" --timeout 3
fails 1 "peers without a port" "--peers" -- party 0 "127.0.0.1,127.0.0.1:$P,127.0.0.1:$P" --timeout 3
fails 1 "port 0" "--peers" -- party 0 "127.0.0.1:0,127.0.0.1:$P,127.0.0.1:$P" --timeout 3
fails 1 "port 70000" "--peers" -- party 0 "127.0.0.1:70000,127.0.0.1:$P,127.0.0.1:$P" --timeout 3
fails 1 "two peers" "--peers" -- party 0 "127.0.0.1:$P,127.0.0.1:$((P + 1))" --timeout 3
assert_absent "bad peers" "$T/o.0" "$T/o.1"

# ---- a party alone ---------------------------------------------------------------------------
P=$(free_ports 3)
t0=$(now_s)
fails 2 "alone (listener)" "timed out after 2 s waiting for parties 1 and 2 to connect to port $P" -- \
	party 0 "$(peers_list $P)" --timeout 2
fails 2 "alone (dialer)" "cannot connect to party 0 at 127\.0\.0\.1:$P.*gave up after 2 s" -- \
	party 2 "$(peers_list $P)" --timeout 2
el=$(( $(now_s) - t0 ))
[ $el -ge 3 ] && [ $el -le 6 ] || bad "a lone party gave up after ${el}s in all, expected about 4"
assert_absent "alone" "$T/o.0" "$T/o.2"

# ---- reverse start order, 2 s apart ------------------------------------------------------------
P=$(free_ports 3)
for i in 2 1 0; do
	party_bg $i $P "$MS.$i" "$T/x.$i" "$T/rev.$i" "$T/rev.err.$i" --timeout 10 --test-noise-seed \
		000102030405060708090a0b0c0d0e0f
	[ $i = 0 ] || sleep 2
done
for i in 0 1 2; do
	wait_party $i
	[ $rc = 0 ] || bad "reverse order: party $i exited $rc: $(cat "$T/rev.err.$i")"
done
PIDS=""
P=$(free_ports 3)
for i in 0 1 2; do
	party_bg $i $P "$MS.$i" "$T/x.$i" "$T/fwd.$i" "$T/fwd.err.$i" --timeout 10 --test-noise-seed \
		000102030405060708090a0b0c0d0e0f
done
for i in 0 1 2; do
	wait_party $i
	[ $rc = 0 ] || bad "in order: party $i exited $rc: $(cat "$T/fwd.err.$i")"
done
PIDS=""
# ---- 5 s apart, the middle party first ----------------------------------------------------------
# The connect window is the same deadline whatever the gap (--timeout, or
# 120 s by default, so the default covers parties started a minute apart);
# a 5 s gap with --timeout 15 exercises it: party 1 both waits for a late
# dialer (party 2) and keeps dialing a late listener (party 0).
P=$(free_ports 3)
t0=$(now_s)
for i in 1 0 2; do
	party_bg $i $P "$MS.$i" "$T/x.$i" "$T/gap.$i" "$T/gap.err.$i" --timeout 15 --test-noise-seed \
		000102030405060708090a0b0c0d0e0f
	[ $i = 2 ] || sleep 5
done
for i in 0 1 2; do
	wait_party $i
	[ $rc = 0 ] || bad "5 s apart: party $i exited $rc: $(cat "$T/gap.err.$i")"
done
PIDS=""
el=$(( $(now_s) - t0 ))
[ $el -ge 10 ] || bad "5 s apart: done after ${el}s, the gaps were not kept"
[ -s "$T/gap.0" ] || bad "5 s apart: no output of party 0"
$B/cdm-reveal -o "$T/rev.st" "$T/rev.0" "$T/rev.1" 2>"$T/err" || bad "reveal rev: $(cat "$T/err")"
$B/cdm-reveal -o "$T/fwd.st" "$T/fwd.1" "$T/fwd.2" 2>"$T/err" || bad "reveal fwd: $(cat "$T/err")"
$B/cdm-reveal -o "$T/gap.st" "$T/gap.0" "$T/gap.2" 2>"$T/err" || bad "reveal gap: $(cat "$T/err")"
cmp -s "$T/gap.st" "$T/fwd.st" || bad "the 5 s apart run reveals another image than the in-order run"
r=$($B/cdm-reveal --psnr "$T/fwd.st" "$T/rev.st" 2>&1)
echo "reverse-order run vs in-order run: $r"
case "$r" in
	psnr_db=inf*|psnr_db=[4-9][0-9]*|psnr_db=[1-9][0-9][0-9]*) ;;
	*) bad "reverse-order run differs from the in-order run: $r" ;;
esac

finish "network set-up failures and start order"
