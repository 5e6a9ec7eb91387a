#!/bin/sh
# Failing peers end to end, three real cdm-party processes over loopback
# (bundled model, --timeout 3):
#  - party 1 is SIGKILLed mid-run: parties 0 and 2 exit 2 within the timeout
#    (a reset connection is noticed at once) with one line naming the peer;
#  - party 0 is SIGSTOPped mid-run: parties 1 and 2 exit 2 once the timeout
#    has passed (not before, and not much later), one of them with a
#    "peer 0: no data for 3 s (timeout)" line (the other may instead see
#    that one leave).
# No output file is left behind and an existing output is untouched.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x $B/cdm-party ] || { echo "FAIL: $B/cdm-party not built"; exit 1; }
MS=$(model_shares) || exit 1
input_shares "$T/x" 5 31 || exit 1
TO=3

# start3 NAME: the three parties on fresh ports, 50 steps (far longer than the test)
start3() {
	local port i
	port=$(free_ports 3)
	keep_file "$T/$1.out.0"
	for i in 0 1 2; do
		party_bg $i $port "$MS.$i" "$T/x.$i" "$T/$1.out.$i" "$T/$1.err.$i" --steps 50 --timeout $TO
	done
}
# running PID: the process exists and is not a zombie
running() { [ -d /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }
# wait_running NAME: give the parties 1.5 s to connect and start computing;
# fail if one has already ended
wait_running() {
	sleep 1.5
	for i in 0 1 2; do
		eval "running \$pid$i" || { bad "$1: party $i ended early: $(cat "$T/$1.err.$i")"; return 1; }
	done
}
# survivors NAME PATTERN MIN MAX START PARTIES...: each exits 2 after
# MIN..MAX seconds from START with one line matching PATTERN, no output
survivors() {
	local name=$1 pat=$2 min=$3 max=$4 start=$5 i el
	shift 5
	for i in "$@"; do
		wait_party $i
		el=$(( $(now_s) - start ))
		[ $rc = 2 ] || bad "$name: party $i exited $rc, expected 2: $(cat "$T/$name.err.$i")"
		assert_one_line "$T/$name.err.$i" "$name: party $i" "$pat"
		[ $el -ge $min ] && [ $el -le $max ] ||
			bad "$name: party $i exited after ${el}s, expected ${min}..${max}s"
	done
	assert_absent "$name" "$T/$name.out.1" "$T/$name.out.2"
	assert_kept "$T/$name.out.0" "$name"
}

# ---- SIGKILL ------------------------------------------------------------------------------
start3 kill
if wait_running kill; then
	t0=$(now_s)
	kill -9 $pid1
	# the first survivor to notice leaves; the other may see it close first
	survivors kill "peer 1.*(closed|reset)|closed.*peer 1|peer 1|peer [02] closed the connection" \
		0 $TO $t0 0 2
	cat "$T"/kill.err.0 "$T"/kill.err.2 | grep -qE "peer 1.*(closed|reset)|closed.*peer 1" ||
		bad "kill: no survivor reported the killed peer 1: $(cat "$T"/kill.err.*)"
	wait $pid1 2>/dev/null
fi
PIDS=""

# ---- SIGSTOP ------------------------------------------------------------------------------
start3 stop
if wait_running stop; then
	t0=$(now_s)
	kill -STOP $pid0
	# +1: whole-second clock; the silence limit is per round, so it can end up to
	# one timeout after the last byte, which came just before the stop
	# the first survivor to time out leaves; the other may see it close first,
	# or, holding peer 0's last message already, wait on the other survivor
	# (itself stuck on peer 0) and name that one; one of them names peer 0
	survivors stop "peer [0-2]: no data for $TO s \(timeout\)|peer [12] closed the connection" \
		$((TO - 1)) $((TO + 2)) $t0 1 2
	cat "$T"/stop.err.1 "$T"/stop.err.2 | grep -q "peer 0: no data for $TO s (timeout)" ||
		bad "stop: no survivor reported the silent peer 0: $(cat "$T"/stop.err.*)"
	kill -9 $pid0 2>/dev/null
	wait $pid0 2>/dev/null
fi
PIDS=""

finish "killed and stalled peers"
