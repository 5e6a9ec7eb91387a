#!/bin/sh
# A misbehaving party 0 against two real cdm-party processes (parties 1 and
# 2, --timeout 2). The fake peer is build/tests/test_fakepeer in serve mode
# (the shell cannot listen on a socket): random bytes instead of a hello, a
# silent peer, a peer that closes at once, a valid hello followed by random
# bytes, by a frame with a wrong session id, a wrong sequence number, a
# 2^62-byte length, a short frame and a close, or by silence, and a peer
# that trickles one byte per second of its hello or of a frame, never
# completing it. Each: both
# honest parties exit 2 within the timeout (+1 s) with one stderr line
# naming peer 0 and the problem (or, for the second to fail, possibly the
# first one leaving), and leave no output file.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
FAKE=${FAKE:-build/tests/test_fakepeer}
[ -x "$FAKE" ] || { echo "FAIL: $FAKE not built (make tests)"; exit 1; }
[ -x $B/cdm-party ] || { echo "FAIL: $B/cdm-party not built"; exit 1; }
MS=$(model_shares) || exit 1
input_shares "$T/x" 6 41 || exit 1
TO=2

# fake MODE PATTERN: party 0 is the fake; parties 1 and 2 must fail like PATTERN
fake() {
	local mode=$1 pat=$2 port i t0 el fpid found=0
	port=$(free_ports 3)
	"$FAKE" serve $port $mode $((TO + 3)) 2>"$T/$mode.fake" &
	fpid=$!
	PIDS="$PIDS $fpid"
	sleep 0.2
	t0=$(now_s)
	for i in 1 2; do
		party_bg $i $port "$MS.$i" "$T/x.$i" "$T/$mode.out.$i" "$T/$mode.err.$i" --timeout $TO
	done
	for i in 1 2; do
		wait_party $i
		el=$(( $(now_s) - t0 ))
		[ $rc = 2 ] || bad "$mode: party $i exited $rc, expected 2: $(cat "$T/$mode.err.$i")"
		assert_one_line "$T/$mode.err.$i" "$mode: party $i" "$pat|peer [12] closed the connection"
		grep -qE -- "$pat" "$T/$mode.err.$i" && found=1
		[ $el -le $((TO + 1)) ] || bad "$mode: party $i took ${el}s with --timeout $TO"
	done
	[ $found = 1 ] || bad "$mode: no party reported /$pat/: $(cat "$T/$mode".err.*)"
	assert_absent "$mode" "$T/$mode.out.1" "$T/$mode.out.2"
	kill $fpid 2>/dev/null
	wait $fpid 2>/dev/null
	PIDS=""
}

fake random "peer 0: not a cipherdm party \(bad hello magic"
fake silent "peer 0: no data for [0-9.]+ s \(timeout\)"
fake close "peer 0 closed the connection"
fake stall "peer 0: no data for [0-9.]+ s \(timeout\)"
fake garbage "peer 0: frame 0: bad magic"
fake session "peer 0: frame 0: session 0x[0-9a-f]+, expected 0x"
fake seq "peer 0: frame 0: sequence number 5, expected 0"
fake length "peer 0: frame 0: length 4611686018427387904, expected [0-9]+"
fake short "peer 0 closed the connection \(frame 0 cut short after 20 of [0-9]+ bytes\)"
# one byte per second, never completing a frame (the hello, or a frame
# after it): bytes keep arriving, yet the parties give up at the timeout
fake trickle "peer 0: only [0-9]+ bytes and no complete frame in 2 s \(timeout\)"
fake drip "peer 0: only [0-9]+ bytes and no complete frame in [0-9.]+ s \(timeout\)"

finish "fake peer 0 against real parties"
