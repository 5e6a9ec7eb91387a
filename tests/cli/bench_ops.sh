#!/bin/sh
# cdm-bench ops --json: every operation under all three suites (SPEC 7
# schema, 18 ops x 3 suites), the cdm suite's accuracy targets (issue 2:
# SiLU, GeLU, Mish, sigmoid, tanh abs <= 1e-3 on [-1e4, 1e4]; exp relative
# <= 1e-3 where exp >= 1e-3; reciprocal and rsqrt relative <= 1e-3 on [1e-4,
# 1e6]; softmax row L1 <= 1e-3 for rows of 196 and of 4096), the cost
# targets the suite meets (bytes <= 1/3 of spu's for SiLU, GeLU, Mish,
# sigmoid; rounds <= 1/2 of spu's for those and tanh), and the primitives'
# bytes and rounds against their formulas (lib/mpc/mpc.h). Bad usage:
# exit 1, one line.
CDM_CLI_LIB=1 . tests/cli/lib.sh
[ -x "$B/cdm-bench" ] || { echo "FAIL: $B/cdm-bench not built"; exit 1; }

# field FILE OP SUITE KEY: the value of KEY in the row of OP under SUITE
field() {
	sed -n "s/.*\"op\": \"$2\", \"suite\": \"$3\".*\"$4\": \([^,}]*\).*/\1/p" "$1"
}
# le A B: A <= B as numbers (awk reads 1e-3 and the like)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

$B/cdm-bench ops --n 4096 --json -q >"$T/ops.json" 2>"$T/err" ||
	bad "cdm-bench ops failed: $(cat "$T/err")"
$B/cdm-bench ops --n 8192 --cols 4096 --ops softmax --json -q >"$T/long.json" 2>"$T/err" ||
	bad "cdm-bench ops --cols 4096 failed: $(cat "$T/err")"
J=$T/ops.json
[ "$(head -c 1 "$J")" = "[" ] && [ "$(tail -n 1 "$J")" = "]" ] || bad "not one JSON array"
[ "$(grep -c '"op": ' "$J")" = 54 ] || bad "expected 54 rows, got $(grep -c '"op": ' "$J")"
for op in mul trunc mul_trunc lt select relu max exp reciprocal rsqrt sigmoid tanh silu gelu \
	mish softplus softmax groupnorm; do
	for s in cdm spu cipherdm; do
		for k in n bytes_per_elem rounds seconds max_abs_err max_rel_err; do
			v=$(field "$J" $op $s $k)
			[ -n "$v" ] || bad "$op/$s lacks $k"
		done
	done
done
[ "$(field "$J" softmax cdm cols)" = 196 ] || bad "softmax rows are not of 196 by default"

# accuracy of the cdm suite
for op in silu gelu mish sigmoid tanh; do
	v=$(field "$J" $op cdm max_abs_err)
	le "$v" 1e-3 || bad "cdm $op: max abs error $v > 1e-3"
	[ "$(sed -n "s/.*\"op\": \"$op\", \"suite\": \"cdm\".*\"domain\": \[\([^]]*\)\].*/\1/p" "$J")" = \
		"-10000, 10000" ] || bad "cdm $op not measured on [-1e4, 1e4]"
done
for op in exp reciprocal rsqrt; do
	v=$(field "$J" $op cdm max_rel_err)
	le "$v" 1e-3 || bad "cdm $op: max relative error $v > 1e-3"
done
v=$(field "$J" softmax cdm max_abs_err)
le "$v" 1e-3 || bad "cdm softmax rows of 196: L1 $v > 1e-3"
v=$(field "$T/long.json" softmax cdm max_abs_err)
le "$v" 1e-3 || bad "cdm softmax rows of 4096: L1 $v > 1e-3"
[ "$(field "$T/long.json" softmax cdm cols)" = 4096 ] || bad "--cols 4096 not reported"
# the baselines really are the inaccurate ones the comparison is about
v=$(field "$J" silu cipherdm max_abs_err)
le 0.05 "$v" || bad "cipherdm silu error $v: not CipherDM's piecewise SiLU"

# cost targets met by the cdm suite
for op in silu gelu mish sigmoid; do
	b=$(field "$J" $op cdm bytes_per_elem); sb=$(field "$J" $op spu bytes_per_elem)
	le "$(awk -v a="$b" 'BEGIN { print 3 * a }')" "$sb" || bad "cdm $op: $b B/elem > spu's $sb / 3"
done
for op in silu gelu mish sigmoid tanh; do
	r=$(field "$J" $op cdm rounds); sr=$(field "$J" $op spu rounds)
	[ $((2 * r)) -le "$sr" ] || bad "cdm $op: $r rounds > spu's $sr / 2"
done

# primitives against lib/mpc/mpc.h's formulas (the same for every suite):
# formula bytes per element plus the 32-byte frame headers, at most one per
# peer per party per round
# cost OP SUITE BYTES ROUNDS
cost() {
	got_b=$(field "$J" $1 $2 bytes_per_elem); got_r=$(field "$J" $1 $2 rounds)
	[ "$got_r" = "$4" ] || bad "$1/$2: $got_r rounds, formula $4"
	awk -v g="$got_b" -v f="$3" -v r="$4" 'BEGIN { h = (g - f) * 4096; h = int(h + (h < 0 ? -0.5 : 0.5));
		exit !(h >= 0 && h <= r * 6 * 32 && h % 32 == 0) }' ||
		bad "$1/$2: $got_b B/elem, formula $3 + headers"
}
for s in cdm spu; do
	cost mul $s 24 1
	cost trunc $s 23.5 2
	cost mul_trunc $s 31.5 3
	cost lt $s 57 5
	cost select $s 24 1
	cost relu $s 81 6
	for op in mul lt select relu max; do
		v=$(field "$J" $op $s max_abs_err)
		[ "$v" = 0 ] || bad "$op/$s is not exact: $v"
	done
done

# bad usage: one line, exit 1, nothing on stdout
for args in "--cols 1" "--cols 20000" "--ops nope" "--protocols cdm,xyz" "--n 0" "--reps 2"; do
	$B/cdm-bench ops $args -q >"$T/out" 2>"$T/err"; rc=$?
	[ $rc = 1 ] || bad "ops $args exited $rc"
	[ "$(wc -l <"$T/err")" = 1 ] || bad "ops $args: stderr is not one line"
	[ -s "$T/out" ] && bad "ops $args printed on stdout"
done
finish bench_ops
