/*
 * bench/ops: per-operation benchmark of the MPC primitives and nonlinear
 * functions (cdm-bench ops). Runs an operation as three parties in three
 * threads of this process over cdm_net_local (real socketpairs), repeats
 * it, and reports SPEC section 7's figures.
 *
 * Owns: the op list, the input domain of each op and suite, the double
 * references. Does not own: printing (cmd/cdm-bench.c).
 * Figures: bytes_per_elem = bytes sent by all three parties for one run /
 * n; rounds = the most rounds any party takes part in (the depth);
 * seconds = median over `reps` runs of party 0's wall time; errors
 * against double references on `domain` (inputs drawn there: dense near 0
 * and breakpoints, log-uniform tails). max, softmax, groupnorm work on
 * rows of `cols` elements (n is rounded down to whole rows); softmax's
 * output is taken at F + 6 bits as the attention layers take it
 * (nonlin.h) and its max_abs_err is the worst row's L1 distance.
 * Thread-safety: each call starts its own threads and session; calls may
 * not overlap (OpenSSL and sockets are fine, the timings would not be).
 */
#ifndef CDM_BENCH_OPS_H
#define CDM_BENCH_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../nonlin/nonlin.h"

struct cdm_bench_op_result {
	char op[16];
	char suite[12];
	size_t n;              /* elements */
	size_t cols;           /* row length (max, softmax, groupnorm), else 0 */
	double bytes_per_elem; /* all three parties, one run */
	uint64_t rounds;       /* the busiest party's, one run (the depth) */
	double seconds;        /* median over reps */
	double max_abs_err, max_rel_err;
	double domain[2];
	int suite_specific;    /* 0: a primitive (same for every suite) */
};

/* The op names in SPEC order (NULL-terminated). */
extern const char *const cdm_bench_op_names[];

/* Benchmark `op` (a name from cdm_bench_op_names) under suite s with n
 * elements (1..10^7), rows of cols (2..16384; row ops only) and reps
 * (5..1000) runs. CDM_EINPUT for an unknown op or bad sizes; network
 * errors pass through. */
int cdm_bench_op(const char *op, enum cdm_suite s, size_t n, size_t cols, int reps,
		 struct cdm_bench_op_result *out, struct cdm_err *err);

#endif
