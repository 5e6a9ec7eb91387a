#!/bin/sh
# Error paths of the secure tools, with real processes over TCP loopback.
# Each case: the exit status (1 input, 2 network), exactly one stderr line
# naming the tool and the cause, no output file left behind, and an existing
# output file untouched.
#  - cdm-party: a share of another party, a model share given as input, a
#    missing flag, parties disagreeing on --steps and on the model sharing
#    (exit 1 naming both values), a killed peer (the others exit 2 within the
#    timeout), a port in use (exit 2)
#  - cdm-reveal: shares of different sharings, the same party twice, an input
#    share, a single share
#  - cdm-share: a NaN weight (exit 1 naming the tensor, nothing written)
# Every scenario takes three ports probed free (a fixed base plus offsets
# could land on a port an earlier connection still holds).
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -f $M/config.json ] || { echo "FAIL: no bundled MNIST model"; exit 1; }
PORT=$(free_ports 3)
peers() { echo 127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)); }

# expect STATUS PATTERN ERRFILE: one line on stderr, starting with the tool name
expect_err() {
	[ "$(wc -l <"$3")" = 1 ] || bad "stderr is not one line: $(cat "$3")"
	grep -q "^cdm-[a-z]*: " "$3" || bad "stderr lacks the tool name: $(cat "$3")"
	grep -q -- "$2" "$3" || bad "stderr lacks '$2': $(cat "$3")"
}
# fails STATUS PATTERN CMD...: run CMD, check status and stderr
fails() {
	want=$1 pat=$2; shift 2
	"$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
	[ $rc = "$want" ] || bad "'$*' exited $rc, expected $want: $(cat "$T/stderr")"
	expect_err "$want" "$pat" "$T/stderr"
}
party() { # party I MODEL INPUT OUT [flags...]
	i=$1 mo=$2 in=$3 out=$4; shift 4
	$B/cdm-party --id $i --peers "$(peers)" --model "$mo" --input "$in" -o "$out" -q \
		--timeout 10 "$@"
}
# the same in the background: exec, so that $! is the party itself (kill -9 hits it)
bgparty() { (i=$1 mo=$2 in=$3 out=$4; shift 4
	exec $B/cdm-party --id $i --peers "$(peers)" --model "$mo" --input "$in" -o "$out" -q \
		--timeout 10 "$@") & }

$B/cdm-share -o "$T/m" $M || bad "share model"
$B/cdm-share -o "$T/m2" $M || bad "share model again"
$B/cdm-share -o "$T/x" --input --label 2 --seed 5 $M || bad "share input"

# ---- local checks (no peer is contacted) ------------------------------------------
fails 1 "is party 0's share, expected party 1's" party 1 "$T/m.0" "$T/x.1" "$T/o.1"
[ -e "$T/o.1" ] && bad "output left after a wrong party index"
fails 1 "is a model share, expected an input share" party 1 "$T/m.1" "$T/m.1" "$T/o.1"
fails 1 "is an input share, expected a model share" party 1 "$T/x.1" "$T/x.1" "$T/o.1"
fails 1 "required" $B/cdm-party --id 0 --model "$T/m.0" -o "$T/o.0"
fails 1 "not ddpm, ddim or dpmpp" party 0 "$T/m.0" "$T/x.0" "$T/o.0" --sampler euler
fails 1 "No such file" party 0 "$T/nonexistent" "$T/x.0" "$T/o.0"

# ---- parties that disagree: exit 1 naming both values, outputs untouched ----------
echo keep >"$T/o.0"
PORT=$(free_ports 3)
for i in 0 1 2; do
	steps=3; [ $i = 2 ] && steps=4
	party $i "$T/m.$i" "$T/x.$i" "$T/o.$i" --steps $steps 2>"$T/dis.$i" &
	PIDS="$PIDS $!"
done
for p in $PIDS; do wait $p; s=$?; [ $s = 1 ] || bad "steps mismatch: party exited $s"; done
PIDS=""
expect_err 1 "disagrees on steps: 3 here, 4 there" "$T/dis.0"
expect_err 1 "disagrees on steps: 4 here, 3 there" "$T/dis.2"
[ "$(cat "$T/o.0")" = keep ] || bad "existing output changed by a failed run"
[ -e "$T/o.1" ] && bad "output left after a mismatch"

PORT=$(free_ports 3)
for i in 0 1 2; do
	mo="$T/m.$i"; [ $i = 0 ] && mo="$T/m2.0"
	party $i "$mo" "$T/x.$i" "$T/o.$i" --steps 3 2>"$T/dis.$i" &
	PIDS="$PIDS $!"
done
for p in $PIDS; do wait $p; s=$?; [ $s = 1 ] || bad "sharing mismatch: party exited $s"; done
PIDS=""
expect_err 1 "disagrees on model_sharing" "$T/dis.1"

# ---- a killed peer: the others exit 2 well within the timeout ------------------------
PORT=$(free_ports 3)
start=$(date +%s)
for i in 0 1 2; do
	bgparty $i "$T/m.$i" "$T/x.$i" "$T/k.$i" --steps 200 --timeout 8 2>"$T/kill.$i"
	eval pid$i=$!
done
PIDS="$pid0 $pid1 $pid2"
sleep 2
kill -9 $pid2 2>/dev/null
for i in 0 1; do
	eval p=\$pid$i
	wait $p; s=$?
	[ $s = 2 ] || bad "party $i exited $s after its peer was killed: $(cat "$T/kill.$i")"
	expect_err 2 "" "$T/kill.$i"
	[ -e "$T/k.$i" ] && bad "party $i left an output after a failure"
done
wait $pid2 2>/dev/null
PIDS=""
el=$(( $(date +%s) - start ))
[ $el -le 12 ] || bad "parties took ${el}s to notice a killed peer"

# ---- a port in use ---------------------------------------------------------------------
PORT=$(free_ports 3)
bgparty 0 "$T/m.0" "$T/x.0" "$T/p.0" --timeout 6 2>/dev/null
PIDS=$!
sleep 1
fails 2 "" party 0 "$T/m.0" "$T/x.0" "$T/p2.0" --timeout 3
grep -qi "in use" "$T/stderr" || bad "port in use: $(cat "$T/stderr")"
kill $PIDS 2>/dev/null; wait $PIDS 2>/dev/null; PIDS=""

# ---- cdm-reveal --------------------------------------------------------------------------
# two real runs to get outputs of different sharings
for run in a b; do
	PORT=$(free_ports 3)
	for i in 0 1 2; do
		party $i "$T/m.$i" "$T/x.$i" "$T/$run.$i" --steps 1 &
		PIDS="$PIDS $!"
	done
	for p in $PIDS; do wait $p || bad "run $run failed"; done
	PIDS=""
done
echo keep >"$T/r.png"
fails 1 "different sharings" $B/cdm-reveal -o "$T/r.png" "$T/a.0" "$T/b.1"
fails 1 "given twice" $B/cdm-reveal -o "$T/r.png" "$T/a.1" "$T/a.1"
fails 1 "is an input share, expected an output share" $B/cdm-reveal -o "$T/r.png" "$T/a.0" "$T/x.1"
fails 1 "one share reveals nothing" $B/cdm-reveal -o "$T/r.png" "$T/a.0"
[ "$(cat "$T/r.png")" = keep ] || bad "cdm-reveal changed an existing output on failure"
$B/cdm-reveal -o "$T/r.png" "$T/a.0" "$T/a.1" "$T/a.2" || bad "three-share reveal"

# ---- cdm-share ----------------------------------------------------------------------------
mkdir "$T/nan"
cp $M/config.json "$T/nan/"
# the model's weight file with the first value of conv_in.bias NaN (F32
# 0x7fc00000); every other tensor fits config.json, so the NaN is the cause
W=$M/diffusion_pytorch_model.safetensors
L=$(od -An -tu8 -N8 $W | tr -d ' ')
A=$(dd if=$W bs=1 skip=8 count="$L" 2>/dev/null | grep -o '"conv_in.bias":{[^}]*}' |
	sed -n 's/.*"data_offsets":\[\([0-9]*\),.*/\1/p')
[ -n "$A" ] || bad "conv_in.bias not found in $W"
cp $W "$T/nan/diffusion_pytorch_model.safetensors"
printf '\000\000\300\177' | dd of="$T/nan/diffusion_pytorch_model.safetensors" bs=1 \
	seek=$((8 + L + ${A:-0})) conv=notrunc 2>/dev/null
fails 1 "conv_in.bias" $B/cdm-share -o "$T/nanshare" "$T/nan"
ls "$T" | grep -q nanshare && bad "cdm-share left files behind: $(ls "$T" | grep nanshare)"
# a failing run never replaces existing shares
echo keep >"$T/old.1"
fails 1 "conv_in.bias" $B/cdm-share -o "$T/old" "$T/nan"
[ "$(cat "$T/old.1")" = keep ] || bad "cdm-share replaced an existing file on failure"
[ "$(ls "$T" | grep -c '^old')" = 1 ] || bad "cdm-share left files: $(ls "$T" | grep '^old')"
fails 1 "outside 0..9" $B/cdm-share -o "$T/old" --input --label 10 "$T/m.0"
fails 1 "need --input" $B/cdm-share -o "$T/old" --seed 3 $M

finish "secure error paths"
