#!/bin/sh
# Shared helpers for the CLI tests (POSIX sh, dash-safe). A test does
#   CDM_CLI_LIB=1 . tests/cli/lib.sh
# from the repository root and gets:
#   $B (tool directory), $M (bundled MNIST model), $T (scratch dir, removed
#   on exit together with every process registered in $PIDS), bad/finish,
#   free_ports N (first of N consecutive free TCP ports), peers_list BASE,
#   party_bg/wait_party (one cdm-party in the background), wait_trio and
#   trio_ok (all three: statuses, or a FAIL line per failed party),
#   model_shares (cached model shares: prints their prefix), input_shares,
#   trio_refused (all three exit 1 with one line, no output),
#   assert_tracked (figures recorded in tests/cli/costs.tsv),
#   sd_tiny_pipeline (the random-weight SD pipeline folder of tests/golden_sd),
#   assert_exit, assert_one_line, keep_file/assert_kept (an existing output
#   left byte-for-byte and mtime-untouched), assert_absent, and safetensors
#   surgery with shell tools only (st_hdr_len, st_header, st_data, st_build).
# Run directly (not sourced), it checks its own helpers and exits 0 or 1.

cd "$(dirname "$0")/../.." || exit 1
B=${BIN:-bin}
M=share/models/mnist-tiny
[ -f $M/config.json ] || M=share/models/mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/cdm-cli.XXXXXX") || exit 1
PIDS=""
fail=0
# kill what is still running (stopped processes need SIGCONT to die on TERM)
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
	[ -n "${CLEANUP_EXTRA:-}" ] && eval "$CLEANUP_EXTRA"
	return 0
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

bad() { echo "FAIL: $*"; fail=1; }
# finish NAME: last line of a test
finish() {
	[ $fail = 0 ] && echo "$1 ok"
	exit $fail
}

# ---- ports -------------------------------------------------------------------------
# A port is taken if /proc/net/tcp{,6} lists it in any state (listening or
# lingering in TIME_WAIT). Ports are picked at random in 20000..59999 so
# concurrent test runs rarely collide, and checked.
port_taken() {
	local hex
	hex=$(printf ':%04X ' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2}' | grep -q "${hex% }\$"
}
# free_ports N: print the first of N consecutive free ports
free_ports() {
	local n=$1 seed try base ok k
	seed=$(( ($$ * 7919 + $(date +%N | sed 's/^0*//;s/^$/0/') / 1000) % 40000 ))
	for try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		base=$(( 20000 + (seed + try * 997) % 39990 ))
		ok=1; k=0
		while [ $k -lt "$n" ]; do
			port_taken $((base + k)) && { ok=0; break; }
			k=$((k + 1))
		done
		[ $ok = 1 ] && { echo $base; return 0; }
	done
	echo 0; return 1
}
peers_list() { echo 127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2)); }

# ---- parties -----------------------------------------------------------------------
# party_bg I PORT MODEL INPUT OUT ERRFILE [flags...]: cdm-party I in the
# background (exec'ed, so $! is the party itself and signals reach it),
# registered in $PIDS; its pid is also left in $pid<I>. Quiet, one step,
# 3 s timeout unless flags override them.
party_bg() {
	local i=$1 port=$2 mo=$3 in=$4 out=$5 errf=$6
	shift 6
	(exec $B/cdm-party --id $i --peers "$(peers_list $port)" --model "$mo" --input "$in" \
		-o "$out" -q --steps 1 --timeout 3 "$@" 2>"$errf") &
	eval pid$i=$!
	PIDS="$PIDS $!"
}
# wait_party I: wait for party I (started by party_bg); its status in $rc
wait_party() {
	eval "wait \$pid$1"
	rc=$?
}
# wait_trio: wait for parties 0, 1, 2 (pids in $pid0..$pid2); statuses in
# $st0..$st2
wait_trio() {
	local i
	for i in 0 1 2; do
		wait_party $i
		eval st$i=$rc
	done
}
# trio_ok WHAT ERRPREFIX: wait_trio, then one FAIL line per party that did
# not exit 0, with its stderr (ERRPREFIX.I); $PIDS is cleared
trio_ok() {
	local i st
	wait_trio
	for i in 0 1 2; do
		eval st=\$st$i
		[ "$st" = 0 ] || bad "$1: party $i exited $st: $(cat "$2.$i")"
	done
	PIDS=""
}
# trio_refused NAME WHAT PATTERNS...: after wait_trio, every party exited
# 1 with one stderr line ($T/NAME.err.I) matching PATTERNS and left no
# output ($T/NAME.out.I)
trio_refused() {
	local name=$1 what=$2 i s
	shift 2
	for i in 0 1 2; do
		eval "s=\$st$i"
		[ "$s" = 1 ] || bad "$what: party $i exited $s, expected 1"
		assert_one_line "$T/$name.err.$i" "$what, party $i" "$@"
		assert_absent "$what" "$T/$name.out.$i"
	done
}
# assert_tracked KEY FIGURES...: FIGURES equal the line KEY of
# tests/cli/costs.tsv (bytes and rounds are deterministic)
assert_tracked() {
	local key=$1 want
	shift
	want=$(awk -v k="$key" '$1 == k { $1 = ""; sub(/^ +/, ""); print }' tests/cli/costs.tsv)
	[ "$*" = "$want" ] || bad "$key: $*, tracked in tests/cli/costs.tsv: ${want:-nothing}"
}
# elapsed_since START: whole seconds since START (from now_s)
now_s() { date +%s; }

# ---- cached shares -----------------------------------------------------------------
# Model shares of $M are made once per build and model (keyed by the
# cdm-share binary and the model files) under build/cli-cache/ and reused by
# every CLI test of the run; a test must not modify them.
model_shares() {
	local key dir
	key=$(cat $B/cdm-share $M/* 2>/dev/null | cksum | tr ' ' _)
	dir=build/cli-cache/$(basename $B)-$key
	if [ ! -f "$dir/done" ]; then
		rm -rf build/cli-cache/$(basename $B)-*
		mkdir -p "$dir" && $B/cdm-share -o "$dir/m" $M >/dev/null 2>"$dir/err" &&
			touch "$dir/done" || { echo "FAIL: cdm-share of $M: $(cat "$dir/err")" >&2; return 1; }
	fi
	echo "$dir/m"
}
# input_shares PREFIX LABEL SEED: a user input (fast, not cached)
input_shares() {
	$B/cdm-share -o "$1" --input --label "$2" --seed "$3" $M 2>"$T/input.err" ||
		{ bad "cdm-share --input: $(cat "$T/input.err")"; return 1; }
}

# ---- assertions --------------------------------------------------------------------
# run_cmd CMD...: run with stdout/stderr in $T/stdout, $T/stderr; status in $rc
run_cmd() { "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?; }
# assert_exit WANT WHAT: the last run_cmd exited WANT
assert_exit() {
	[ "$rc" = "$1" ] || bad "$2: exit $rc, expected $1; stderr: $(head -c 400 "$T/stderr")"
}
# assert_one_line FILE WHAT PATTERN...: FILE is exactly one line starting with
# "cdm-<tool>: " and containing every PATTERN (grep -E, case-insensitive),
# with no prefix repeated ("x.0: x.0: ...")
assert_one_line() {
	local f=$1 what=$2 lines pat
	shift 2
	lines=$(wc -l <"$f")
	[ "$lines" = 1 ] || { bad "$what: stderr has $lines lines: $(head -c 600 "$f")"; return; }
	grep -q '^cdm-[a-z-]*: ' "$f" || bad "$what: stderr lacks the tool name: $(cat "$f")"
	# a prefix added twice ("m.0: m.0: ...") reads as a bug to the user
	grep -qE '(^| )([^ ]+): \2: ' "$f" && bad "$what: stderr repeats a prefix: $(cat "$f")"
	for pat in "$@"; do
		grep -qiE -- "$pat" "$f" || bad "$what: stderr lacks /$pat/: $(cat "$f")"
	done
}
# fails WANT WHAT PATTERNS -- CMD...: run_cmd + assert_exit + assert_one_line
fails() {
	local want=$1 what=$2 pats="" old_ifs
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do pats="$pats$1
"; shift; done
	shift
	run_cmd "$@"
	assert_exit "$want" "$what"
	old_ifs=$IFS; IFS='
'
	set -f
	# shellcheck disable=SC2086
	assert_one_line "$T/stderr" "$what" $pats
	set +f
	IFS=$old_ifs
}
# keep_file FILE: create FILE with known bytes and an old mtime
keep_file() {
	printf 'keep %s\n' "$1" >"$1" && touch -d '2001-02-03 04:05:06' "$1"
}
# assert_kept FILE WHAT: FILE still has the bytes and mtime keep_file gave it
assert_kept() {
	[ "$(cat "$1" 2>/dev/null)" = "keep $1" ] || bad "$2: existing $1 was changed"
	[ "$(stat -c %Y "$1" 2>/dev/null)" = "$(date -d '2001-02-03 04:05:06' +%s)" ] ||
		bad "$2: existing $1 has a new mtime"
}
# assert_absent WHAT FILE...: none of the files exists (nor a temporary
# next to it: FILE.tmp*, .FILE.*)
assert_absent() {
	local what=$1 f d b left
	shift
	for f in "$@"; do
		[ -e "$f" ] && bad "$what: $f was created"
		d=$(dirname "$f") b=$(basename "$f")
		left=$(ls -a "$d" 2>/dev/null | grep -F "$b" | grep -vx -F "$b")
		[ -n "$left" ] && bad "$what: temporary files left: $left"
	done
}

# ---- the tiny Stable Diffusion pipeline ---------------------------------------------
# sd_tiny_pipeline DIR: a diffusers pipeline folder of the random-weight
# parts in tests/golden_sd (symlinks) with SD's scheduler settings.
# "leading" spacing for DPM++ too (DDIM's default): with DPM++'s default
# linspace the first step is at t=999, where x0 = (x - sigma eps)/alpha
# amplifies by 1/alpha = 15 and this random-weight UNet's latents grow to
# |x| ~ 90 (no trained model comes near), which the fixed-point VAE decode
# does not follow (about 25 dB); leading starts at t=751.
sd_tiny_pipeline() {
	local c
	mkdir -p "$1/scheduler" || return 1
	for c in u_fasttest:unet v_fasttest:vae c_fasttest:text_encoder tok:tokenizer; do
		ln -s "$PWD/tests/golden_sd/${c%%:*}" "$1/${c#*:}"
	done
	echo '{"_class_name": "StableDiffusionPipeline"}' >"$1/model_index.json"
	cat >"$1/scheduler/scheduler_config.json" <<'JSON'
{"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
 "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
 "timestep_spacing": "leading",
 "set_alpha_to_one": false, "clip_sample": false, "skip_prk_steps": true,
 "trained_betas": null}
JSON
}

# ---- safetensors surgery with shell tools -------------------------------------------
st_hdr_len() { od -An -tu8 -N8 "$1" | tr -d ' '; }
st_header() { dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=8 count="$(st_hdr_len "$1")" 2>/dev/null; }
st_data() { tail -c +$(( 9 + $(st_hdr_len "$1") )) "$1"; }
# le64 N: N as 8 little-endian bytes
le64() {
	local v=$1 i=0 esc=""
	while [ $i -lt 8 ]; do
		esc="$esc\\$(printf '%03o' $((v & 255)))"
		v=$((v >> 8)); i=$((i + 1))
	done
	printf "$esc"
}
# st_build HEADER_FILE DATA_FILE: a safetensors file on stdout
st_build() { le64 "$(wc -c <"$1")"; cat "$1" "$2"; }

# ---- self-test when run directly -----------------------------------------------------
if [ -z "${CDM_CLI_LIB:-}" ]; then
	[ "$(le64 258 | od -An -tu1 | tr -s ' ')" = " 2 1 0 0 0 0 0 0" ] || bad "le64 258"
	p=$(free_ports 3)
	[ "$p" -ge 20000 ] && [ "$p" -lt 60000 ] || bad "free_ports gave '$p'"
	f=$M/diffusion_pytorch_model.safetensors
	st_header $f >"$T/h" && st_data $f >"$T/d" && st_build "$T/h" "$T/d" >"$T/r"
	cmp -s $f "$T/r" || bad "st_header/st_data/st_build do not round-trip $f"
	keep_file "$T/k"; assert_kept "$T/k" "keep_file"
	echo "x" >"$T/e"; fail0=$fail; echo extra >>"$T/e"
	(assert_one_line "$T/e" self >/dev/null; exit $fail) && bad "assert_one_line passed 2 lines"
	fail=$fail0
	echo "cdm-party: $T/m.0: $T/m.0: tensor 'a': bad" >"$T/e"
	(assert_one_line "$T/e" self >/dev/null; exit $fail) && bad "assert_one_line passed a repeated prefix"
	fail=$fail0
	(exit 0) & pid0=$!
	(exit 3) & pid1=$!
	(exit 0) & pid2=$!
	echo boom >"$T/t.1"
	fail0=$fail
	trio_ok self "$T/t" >"$T/o"
	got=$fail fail=$fail0
	[ $got = 1 ] && [ "$(cat "$T/o")" = "FAIL: self: party 1 exited 3: boom" ] ||
		bad "trio_ok reported: $(cat "$T/o")"
	[ "$st0 $st1 $st2" = "0 3 0" ] || bad "wait_trio statuses: $st0 $st1 $st2"
	fail0=$fail
	assert_tracked mnist-tiny-ddim2-cdm 1 2 >"$T/o"
	got=$fail fail=$fail0
	[ $got = 1 ] && grep -q "tracked in tests/cli/costs.tsv: [0-9]* [0-9]*$" "$T/o" ||
		bad "assert_tracked passed wrong figures: $(cat "$T/o")"
	finish "cli lib"
fi
