/*
 * bench/gemm: ring (uint64, mod 2^64) GEMM throughput against the machine's
 * float32 GEMM (OpenBLAS cblas_sgemm) on the same shape, in the same run.
 *
 * Owns: timing cdm_ring_gemm and cblas_sgemm on random inputs and turning
 * the medians into comparable rates. Does not own: printing or JSON
 * (cmd/cdm-bench does that, SPEC section 7 schema {"ring_gops",
 * "f32_gflops", "ratio", "m", "k", "n"}).
 *
 * Definitions: both rates count 2*m*k*n operations (one multiply and one
 * add per term), so ring_gops = 2mkn / ring_median / 1e9 and f32_gflops =
 * 2mkn / f32_median / 1e9 are directly comparable; ratio = ring / f32.
 * The headline float32 figure uses one OpenBLAS thread (the ring GEMM is
 * single-threaded); f32_mt_gflops is the same shape with OpenBLAS's default
 * thread count, for reference.
 *
 * Thread-safety: cdm_bench_gemm changes OpenBLAS's global thread count for
 * the duration of the call and restores it; do not run it concurrently with
 * other OpenBLAS users.
 */
#ifndef CDM_BENCH_GEMM_H
#define CDM_BENCH_GEMM_H

#include <stddef.h>

#include "../base/base.h"

/* Default shapes: a 3x3 convolution of 64 -> 64 channels on 28x28 as an
 * im2col GEMM, and a square 512^3. */
#define CDM_BENCH_GEMM_CONV_M 64
#define CDM_BENCH_GEMM_CONV_K 576
#define CDM_BENCH_GEMM_CONV_N 784
#define CDM_BENCH_GEMM_SQUARE 512
#define CDM_BENCH_GEMM_REPS 15

struct cdm_bench_gemm_result {
	size_t m, k, n;
	int reps;             /* timed repetitions of each kernel */
	double ring_seconds;  /* median of cdm_ring_gemm */
	double f32_seconds;   /* median of cblas_sgemm, 1 thread */
	double f32_mt_seconds;/* median of cblas_sgemm, default threads */
	double ring_gops;     /* 2mkn / ring_seconds / 1e9 */
	double f32_gflops;    /* 2mkn / f32_seconds / 1e9 */
	double f32_mt_gflops; /* 2mkn / f32_mt_seconds / 1e9 */
	double ratio;         /* ring_gops / f32_gflops */
	int f32_threads;      /* OpenBLAS's default thread count (for _mt) */
};

/* Time `reps` (1..10000) runs of each kernel on an m x k by k x n product
 * (after one untimed warm-up) and fill *out. Fails with CDM_EINPUT on a zero
 * dimension or bad reps, CDM_ENOMEM if the operands cannot be allocated. */
int cdm_bench_gemm(size_t m, size_t k, size_t n, int reps,
		   struct cdm_bench_gemm_result *out, struct cdm_err *err);

#endif
