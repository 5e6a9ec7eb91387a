#!/bin/sh
# cdm-bench model: a short run (mnist-tiny, DDIM 2 steps, suites cdm and spu,
# loopback, 1 run) twice: the JSON has its fields, bytes and rounds are
# positive, identical in both runs (they are deterministic) and equal to
# the figures tracked in tests/cli/costs.tsv, ratios
# against spu are consistent with the totals. Error paths: bad usage and a
# bad model (exit 1, one line), a failing party (exit 2 and its stderr
# tail), SIGINT (exit 2, nothing left behind). As root with iproute2, a
# one-step --net lan run whose namespaces are gone afterwards; else skipped.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x "$B/cdm-bench" ] && [ -x "$B/cdm-party" ] || { echo "FAIL: $B/cdm-bench not built"; exit 1; }
# suite_field FILE KEY: the suite-level values of KEY (indent 6), one per suite
suite_field() { sed -n "s/^      \"$2\": \([^,]*\),*$/\1/p" "$1"; }

# one_line_error CMD...: exit 1, one stderr line naming the tool
one_line_error() {
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	[ $rc = 1 ] || bad "'$*' exited $rc, expected 1"
	[ "$(wc -l <"$T/err")" = 1 ] || bad "'$*': stderr is not one line: $(cat "$T/err")"
	grep -q '^cdm-bench: ' "$T/err" || bad "'$*': stderr lacks the tool name"
}
$B/cdm-bench --help | grep -q 'cdm-bench model -m MODEL' || bad "--help lacks model"
one_line_error $B/cdm-bench model
one_line_error $B/cdm-bench model -m $M --protocols cdm,xyz
one_line_error $B/cdm-bench model -m $M --net moon
one_line_error $B/cdm-bench model -m $M --runs 0
one_line_error $B/cdm-bench model -m $T/no-such-model -q
one_line_error $B/cdm-bench model -m $M --label 10 -q

# two identical short runs
for k in 1 2; do
	$B/cdm-bench model -m $M --sampler ddim --steps 2 --protocols cdm,spu --runs 1 --json -q \
		>"$T/run$k.json" 2>"$T/run$k.err" || bad "run $k failed: $(cat "$T/run$k.err")"
done
J=$T/run1.json
for k in '"model"' '"sampler": "ddim"' '"steps": 2' '"net": "loopback"' '"plaintext_seconds"' \
	'"suite": "cdm"' '"suite": "spu"' '"by_layer"' '"conv"' '"groupnorm"' '"silu"' \
	'"softmax"' '"sampler": {' '"per_unet_call"' '"spu_over_suite"' '"peak_rss_bytes"' \
	'"peak_rss_bytes_by_party"' '"secure_over_plaintext"' '"wall_seconds"'; do
	grep -q "$k" "$J" || bad "JSON lacks $k"
done
[ "$(suite_field "$J" deterministic | tr '\n' ' ')" = "true true " ] || bad "deterministic flags"
b1=$(suite_field "$T/run1.json" bytes_sent | tr '\n' ' ')
r1=$(suite_field "$T/run1.json" rounds | tr '\n' ' ')
b2=$(suite_field "$T/run2.json" bytes_sent | tr '\n' ' ')
r2=$(suite_field "$T/run2.json" rounds | tr '\n' ' ')
echo "bytes: $b1 / $b2; rounds: $r1 / $r2"
for v in $b1 $r1; do [ "$v" -gt 0 ] 2>/dev/null || bad "bytes/rounds not positive: '$v'"; done
[ "$(echo $b1 | wc -w)" = 2 ] || bad "expected two suites' bytes, got '$b1'"
[ "$b1" = "$b2" ] || bad "bytes differ between runs: $b1 vs $b2"
[ "$r1" = "$r2" ] || bad "rounds differ between runs: $r1 vs $r2"
# against the tracked figures (cdm first, then spu, as --protocols)
set -- $b1 $r1
assert_tracked mnist-tiny-ddim2-cdm $1 $3
assert_tracked mnist-tiny-ddim2-spu $2 $4
# the cdm row's bytes ratio is spu bytes / cdm bytes
set -- $b1
want=$(awk -v a="$2" -v b="$1" 'BEGIN { printf "%.3f", a / b }')
got=$(sed -n '/"spu_over_suite"/{n;s/^ *"bytes": \([0-9.e+-]*\),*$/\1/p;q}' "$J")
awk -v g="$got" -v w="$want" 'BEGIN { exit !(g - w < 0.01 && w - g < 0.01) }' ||
	bad "spu_over_suite.bytes $got, expected spu/cdm = $want"
# the table names every suite and the comparison
$B/cdm-bench model -m $M --steps 1 --protocols spu,cdm --runs 1 --no-plain -q >"$T/table" ||
	bad "table run failed"
grep -q '^suite cdm: ' "$T/table" && grep -q '^suite spu: ' "$T/table" &&
	grep -q 'per UNet call' "$T/table" && grep -q '^against spu' "$T/table" ||
	bad "table: $(cat "$T/table")"

# a failing party: exit 2, its stderr tail shown
mkdir "$T/fake" && cp $B/cdm-bench "$T/fake/" || bad "copy"
printf '#!/bin/sh\necho "boom: party says no" >&2\nexit 2\n' >"$T/fake/cdm-party"
chmod +x "$T/fake/cdm-party"
"$T/fake/cdm-bench" model -m $M --steps 1 --runs 1 --no-plain -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 2 ] || bad "failing party: exit $rc, expected 2"
grep -q 'party [0-2] failed' "$T/err" && grep -q 'boom: party says no' "$T/err" ||
	bad "failing party: stderr $(cat "$T/err")"

# SIGINT during a run: exit 2, "interrupted", the work directory removed
mkdir "$T/tmp"
TMPDIR="$T/tmp" $B/cdm-bench model -m $M --steps 50 --runs 1 --no-plain -q >"$T/out" 2>"$T/err" &
pid=$!
sleep 2
kill -INT $pid
wait $pid; rc=$?
[ $rc = 2 ] || bad "SIGINT: exit $rc, expected 2"
grep -q 'interrupted' "$T/err" || bad "SIGINT: stderr $(cat "$T/err")"
[ -z "$(ls -A "$T/tmp")" ] || bad "SIGINT: left behind $(ls "$T/tmp")"

# emulated LAN (root and iproute2 only)
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v tc >/dev/null &&
	ip netns list >/dev/null 2>&1; then
	$B/cdm-bench model -m $M --steps 1 --protocols cdm --runs 1 --net lan --json -q \
		>"$T/lan.json" 2>"$T/lan.err" &
	pid=$!
	wait $pid || bad "--net lan failed: $(cat "$T/lan.err")"
	grep -q '"net": "lan"' "$T/lan.json" && grep -q '"rate_mbit": 1000' "$T/lan.json" ||
		bad "--net lan JSON: $(head -c 600 "$T/lan.json")"
	[ "$(suite_field "$T/lan.json" rounds)" -gt 0 ] 2>/dev/null || bad "--net lan: no rounds"
	ip netns list | grep -q "cdmbench-$pid-" && bad "--net lan left namespaces behind"
else
	echo "skip: --net lan needs root and iproute2 (ip, tc)"
fi
finish bench_model
