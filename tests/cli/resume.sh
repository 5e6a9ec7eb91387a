#!/bin/sh
# Checkpoint and resume with real processes (cdm-party --checkpoint DIR
# --checkpoint-every K --resume). For DDIM (eta 0, x_T from --seed), DDPM
# (joint x_T and joint noise every step) and DPM++ 2M (a step history), one
# party is killed with SIGKILL right after its first checkpoint appears; the
# two others must exit 2; the three restarted with --resume must report
# resumed_from > 0 and give an output that reveals to EXACTLY the bytes of
# an uninterrupted run (no --checkpoint) with the same test seeds. Also:
# checkpoint files are 0600 and at most two per party; once the three
# outputs are written the run's checkpoints are gone (the directory, another
# run's checkpoints and other files stay), or all kept with
# --keep-checkpoints; no common step, flags that differ between parties,
# --resume without --checkpoint: exit 1 with one line.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
MS=$(model_shares) || exit 1
SEED=000102030405060708090a0b0c0d0e0f

# trio NAME INPUT OUTPREFIX FLAGS...: the three parties in the background on
# fresh ports; pids in pid0..pid2, stderr in $T/NAME.err.I; party $DIES (if
# set) exits right after writing its output, before the checkpoint round
trio() {
	local name=$1 in=$2 out=$3 port i
	shift 3
	port=$(free_ports 3)
	for i in 0 1 2; do
		([ $i = "${DIES:-}" ] && export CDM_TEST_DIE_BEFORE_CHECKPOINT_ROUND=1
		 exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$MS.$i" \
			--input "$in.$i" -o "$out.$i" -q --timeout 5 --test-noise-seed $SEED \
			--stats "$out.stats.$i" "$@" 2>"$T/$name.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
}
# reveal NAME OUTPREFIX: the revealed tensor of parties 0 and 2 in $T/NAME.st
reveal() {
	$B/cdm-reveal -o "$T/$1.st" "$2.0" "$2.2" 2>"$T/$1.rev.err" ||
		bad "$1: cdm-reveal: $(cat "$T/$1.rev.err")"
}

# scenario NAME SAMPLER STEPS EVERY VICTIM INPUT FLAGS...: with $KEEP set
# the resumed run gets --keep-checkpoints; with $FOREIGN set, a checkpoint of
# another run and a text file sit in the directory during the resumed run
scenario() {
	local name=$1 sampler=$2 steps=$3 every=$4 victim=$5 in=$6 ck n
	shift 6
	ck=$T/$name.ck
	# the uninterrupted reference, without checkpoints
	trio $name.ref "$in" "$T/$name.ref" --sampler $sampler --steps $steps "$@"
	wait_trio
	[ "$st0$st1$st2" = 000 ] || { bad "$name: reference run failed: $(cat "$T/$name.ref.err".*)"; return; }
	reveal $name.ref "$T/$name.ref"
	# the interrupted run: SIGKILL the victim once its first checkpoint exists
	trio $name.cut "$in" "$T/$name.cut" --sampler $sampler --steps $steps \
		--checkpoint "$ck" --checkpoint-every $every "$@"
	n=0
	while [ ! -e "$ck/party$victim-step$(printf %06d $every).ckpt" ] && [ $n -lt 1200 ]; do
		sleep 0.05; n=$((n + 1))
	done
	eval "kill -9 \$pid$victim"
	wait_trio
	[ -e "$T/$name.cut.$victim" ] && { bad "$name: party $victim finished before the kill"; return; }
	for i in 0 1 2; do
		[ $i = "$victim" ] && continue
		eval "s=\$st$i"
		[ "$s" = 2 ] || bad "$name: party $i exited $s after its peer was killed, expected 2"
		[ -e "$T/$name.cut.$i" ] && bad "$name: party $i left an output after the failure"
	done
	for f in "$ck"/*; do
		[ "$(stat -c %a "$f")" = 600 ] || bad "$name: $f mode $(stat -c %a "$f")"
	done
	if [ -n "${FOREIGN:-}" ]; then
		for i in 0 1 2; do cp "$FOREIGN/party$i-step000004.ckpt" "$ck/party$i-step000099.ckpt"; done
		echo "notes" >"$ck/notes.txt"
	fi
	# restart the three with --resume
	trio $name.res "$in" "$T/$name.res" --sampler $sampler --steps $steps \
		--checkpoint "$ck" --checkpoint-every $every --resume ${KEEP:+--keep-checkpoints} "$@"
	wait_trio
	[ "$st0$st1$st2" = 000 ] || { bad "$name: resumed run failed: $(cat "$T/$name.res.err".*)"; return; }
	for i in 0 1 2; do
		r=$(grep -o '"resumed_from": [0-9]*' "$T/$name.res.stats.$i" | grep -o '[0-9]*$')
		[ "${r:-0}" -ge "$every" ] || bad "$name: party $i resumed_from '${r:-}' (expected >= $every)"
		own=$(ls "$ck" | grep "^party$i-" | grep -vc "step000099")
		if [ -n "${KEEP:-}" ]; then
			[ "$own" -ge 1 ] && [ "$own" -le 2 ] ||
				bad "$name: $own checkpoints of party $i kept with --keep-checkpoints (expected 1..2)"
		else
			[ "$own" = 0 ] || bad "$name: $own checkpoints of party $i left after a successful run"
		fi
		[ -n "${FOREIGN:-}" ] && [ ! -f "$ck/party$i-step000099.ckpt" ] &&
			bad "$name: another run's checkpoint of party $i was removed"
	done
	[ -d "$ck" ] || bad "$name: the checkpoint directory was removed"
	[ -n "${FOREIGN:-}" ] && [ "$(cat "$ck/notes.txt" 2>/dev/null)" != notes ] &&
		bad "$name: a file that is not a checkpoint was removed"
	reveal $name.res "$T/$name.res"
	if cmp -s "$T/$name.ref.st" "$T/$name.res.st"; then
		echo "$name: resumed after step $r of $steps, output identical to the uninterrupted run"
	else
		bad "$name: resumed output differs from the uninterrupted run"
	fi
}

input_shares "$T/in" 3 1234 || exit 1
$B/cdm-share -o "$T/jin" --input --label 7 $M 2>"$T/jin.err" || bad "joint input: $(cat "$T/jin.err")"

KEEP=1 scenario ddim ddim 6 2 1 "$T/in"
scenario ddpm ddpm 5 2 2 "$T/jin"
FOREIGN=$T/ddim.ck scenario dpmpp dpmpp 5 2 0 "$T/in"
scenario ddim_eta ddim 4 2 1 "$T/jin" --eta 0.5

# an uninterrupted run with checkpoints cleans up after itself too
trio clean "$T/in" "$T/clean" --sampler ddim --steps 4 --checkpoint "$T/clean.ck" \
	--checkpoint-every 1
wait_trio
[ "$st0$st1$st2" = 000 ] || bad "clean run failed: $(cat "$T/clean.err".*)"
[ -d "$T/clean.ck" ] && [ -z "$(ls -A "$T/clean.ck")" ] ||
	bad "clean run: $T/clean.ck is not an empty directory: $(ls -A "$T/clean.ck" 2>&1)"
for i in 0 1 2; do
	[ -s "$T/clean.err.$i" ] && bad "clean run: party $i printed: $(cat "$T/clean.err.$i")"
done
# a party that dies after its output, in the round that lets everyone
# remove the checkpoints: the others finish (exit 0, complete outputs, one
# warning line each) and every checkpoint stays for a later look
DIES=2 trio late "$T/in" "$T/late" --sampler ddim --steps 4 --checkpoint "$T/late.ck" \
	--checkpoint-every 1
wait_trio
[ "$st0$st1$st2" = 009 ] || bad "death before the checkpoint round: exits $st0 $st1 $st2, expected 0 0 9"
for i in 0 1; do
	assert_one_line "$T/late.err.$i" "death before the checkpoint round, party $i" \
		"warning: .*peer 2.*checkpoints in $T/late.ck kept"
	[ "$(ls "$T/late.ck" | grep -c "^party$i-")" -ge 1 ] ||
		bad "death before the checkpoint round: party $i's checkpoints removed"
done
[ "$(ls "$T/late.ck" | grep -c "^party2-")" -ge 1 ] || bad "party 2's checkpoints removed"
$B/cdm-reveal -o "$T/late.st" "$T/late.0" "$T/late.1" 2>"$T/late.rev.err" ||
	bad "death before the checkpoint round: cdm-reveal: $(cat "$T/late.rev.err")"
$B/cdm-reveal -o "$T/clean.st" "$T/clean.0" "$T/clean.1" 2>/dev/null &&
	cmp -s "$T/late.st" "$T/clean.st" ||
	bad "death before the checkpoint round: the output differs from the clean run's"

fails 1 "--keep-checkpoints without --checkpoint" "--keep-checkpoints need --checkpoint" -- \
	$B/cdm-party --id 0 --peers "$(peers_list 30000)" --model "$MS.0" --input "$T/in.0" \
	-o "$T/x.0" --keep-checkpoints

# no step common to the three parties: party 0's checkpoints are gone
rm -f "$T/ddim.ck"/party0-*
trio nocommon "$T/in" "$T/nc" --sampler ddim --steps 6 --checkpoint "$T/ddim.ck" \
	--checkpoint-every 2 --resume
wait_trio
for i in 0 1 2; do
	eval "s=\$st$i"
	[ "$s" = 1 ] || bad "no common step: party $i exited $s, expected 1"
	assert_one_line "$T/nocommon.err.$i" "no common step, party $i" "no checkpoint step common" \
		"party 0: none"
	assert_absent "no common step" "$T/nc.$i"
done

# one party resumes, the others do not: refused in the agreement round
port=$(free_ports 3)
for i in 0 1 2; do
	r=""; [ $i = 1 ] && r=--resume
	(exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$MS.$i" --input "$T/in.$i" \
		-o "$T/mix.$i" -q --timeout 5 --steps 2 --checkpoint "$T/mix.ck" $r 2>"$T/mix.err.$i") &
	eval pid$i=$!
	PIDS="$PIDS $!"
done
wait_trio
for i in 0 1 2; do
	eval "s=\$st$i"
	[ "$s" = 1 ] || bad "mixed --resume: party $i exited $s, expected 1"
	assert_one_line "$T/mix.err.$i" "mixed --resume, party $i" "disagrees on resume"
done

fails 1 "--resume without --checkpoint" "--checkpoint" -- $B/cdm-party --id 0 \
	--peers "$(peers_list 30000)" --model "$MS.0" --input "$T/in.0" -o "$T/x.0" --resume
fails 1 "--checkpoint-every 0" "--checkpoint-every" -- $B/cdm-party --id 0 \
	--peers "$(peers_list 30000)" --model "$MS.0" --input "$T/in.0" -o "$T/x.0" \
	--checkpoint "$T/c" --checkpoint-every 0

finish "resume"
