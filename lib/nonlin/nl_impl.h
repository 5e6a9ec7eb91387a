/*
 * nl_impl.h: internals of lib/nonlin shared by its .c files (not part of
 * the public API). Helpers work on whole vectors: each helper call is a
 * fixed number of MPC rounds whatever n is.
 */
#ifndef CDM_NL_IMPL_H
#define CDM_NL_IMPL_H

#include <stdint.h>

#include "../mpc/mpc.h"
#include "../ring/ring.h"
#include "nonlin.h"

#define NL_MAX_BRK 4
#define NL_MAX_DEG 16

/* A piecewise function for the cdm suite (coefficients in coef.h, made by
 * scripts/fit_nonlin.py). Segment j of x (0..nbrk) lies between brk[j-1]
 * and brk[j]; its value is lin0[j] + lin1[j]*x, plus, when segmap[j] = m
 * >= 0, the Chebyshev sum S_m = sum_k cheb[m][k] T_k(w_m) (times x when
 * odd), where w_m = ((v * a[m]) >> shift) + b[m] and v = x*x (sq) or x. */
struct nl_pw {
	int nbrk;
	double brk[NL_MAX_BRK];
	int sq, odd, deg, nmap, shift;
	int mdeg[2]; /* Chebyshev degree of each map (deg = the largest) */
	long long a[2];
	double b[2];
	double lin0[NL_MAX_BRK + 1], lin1[NL_MAX_BRK + 1];
	int segmap[NL_MAX_BRK + 1];
	double cheb[2][NL_MAX_DEG + 1];
};

/* ---- vectors of shares ------------------------------------------------- */
/* Allocate k zeroed sharings of n elements each; free with nl_free. */
int nl_new(cdm_shr *v, int k, size_t n, struct cdm_err *err);
void nl_free(cdm_shr *v, int k);
/* One sharing of n elements with undefined contents (for buffers that are
 * written in full: saves the zeroing); free with cdm_shr_free. */
int nl_new_raw(cdm_shr *v, size_t n, struct cdm_err *err);
/* View a sub-range [off, off+n) of s (no copy; do not free). */
cdm_shr nl_view(const cdm_shr *s, size_t off, size_t n);

/* Fixed-point encoding of a public real at `frac` bits (saturating). */
uint64_t nl_enc(double v, int frac);
/* Local: out = sum of the share vector times the public integer c (adds
 * into out when acc). */
void nl_axpy(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c, int acc);
/* Local: out = x * 2^s (s >= 0), i.e. change of scale without loss. */
void nl_shl(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int s);
/* out = (x*y) >> shift with the truncation fused into the product
 * (cdm_mpc_dot_trunc): for products at other scales than F. */
int nl_mul_shift(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y, int shift,
		 struct cdm_err *err);

/* bits[k] = [x < t[k]] (arithmetic 0/1) for k < K, all K*n comparisons in
 * one cdm_mpc_ltz call. x is compared after an exact right shift by
 * `pre` bits (0: none), the thresholds are real numbers. bits must hold K
 * vectors of n. */
int nl_cmp_consts(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		  int pre, struct cdm_err *err);

/* A product riding along a comparison: out = (x * y) >> shift, elementwise
 * (cdm_mpc_ltz_dot_trunc). out: zeroed. */
struct nl_ride {
	cdm_shr *out;
	const cdm_shr *x, *y;
	int shift;
};
/* nl_cmp_consts with `ride` computed in the rounds of the comparisons
 * (after the pre shift's 2 rounds when pre > 0; ride uses its own
 * operands, not the shifted x). */
int nl_cmp_consts_ride(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		       int pre, const struct nl_ride *ride, struct cdm_err *err);
/* Select among K+1 segment values P[0..K] (same scale) with the monotone
 * bits b[k] = [x < t_k]: out = P[K] + sum_k b[k]*(P[k-1]-P[k]), K
 * products in one round, exact (garbage in unselected P cancels). out:
 * zeroed (allocated here) or n elements. */
int nl_seg_select(cdm_mpc *m, cdm_shr *out, const cdm_shr *P, const cdm_shr *b, int K,
		  struct cdm_err *err);

/* Chebyshev polynomials T[1..] of w (scale F), T[0] unused. w holds nmap
 * blocks of equal size; block b gets T_1..T_mdeg[b] (entries beyond stay
 * as they were). One mul_trunc call per tree level (ceil(log2 deg)). */
int nl_cheb_tree(cdm_mpc *m, cdm_shr *T, const cdm_shr *w, const int *mdeg, int nmap,
		 struct cdm_err *err);

/* Evaluate a cdm piecewise table. */
int nl_pw_eval(cdm_mpc *m, const struct nl_pw *f, cdm_shr *out, const cdm_shr *x,
	       struct cdm_err *err);

/* Bucket a positive x by powers of two: g[k - kmin] = [x < 2^k] for k in
 * [kmin, kmax] (compared after a right shift by `pre`; x has F + xbits
 * fraction bits). Then lincomb: out
 * = sum over the buckets (x < 2^kmin), [2^(k-1), 2^k) for k in
 * (kmin, kmax], (x >= 2^kmax) of onehot * val[bucket] -- val has
 * kmax-kmin+2 ring constants, bottom first, top last. Local. */
int nl_buckets(cdm_mpc *m, cdm_shr *g, const cdm_shr *x, int kmin, int kmax, int pre,
	       int xbits, struct cdm_err *err);
void nl_bucket_lincomb(cdm_mpc *m, cdm_shr *out, const cdm_shr *g, int kmin, int kmax,
		       const uint64_t *val);

/* Broadcast one value per row to rows x cols. */
void nl_bcast_rows(cdm_shr *out, const cdm_shr *v, size_t rows, size_t cols);
/* Sum each row of a rows x cols matrix (local). */
void nl_sum_rows(cdm_shr *out, const cdm_shr *x, size_t rows, size_t cols);

/* ---- suites -------------------------------------------------------------- */
/* cdm exp core: exp(min(x, 0)), 0 below -16; result at `frac_out` fraction
 * bits (<= F + 8). clamp_pos = 0 skips the x > 0 comparison (softmax). */
int nl_cdm_exp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_out, int clamp_pos,
	       struct cdm_err *err);
/* cdm reciprocal / rsqrt of x at fraction bits `frac` (F or F + 8),
 * comparisons on x >> pre for thresholds 2^kmin..2^kmax; result at F. */
int nl_cdm_recip(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_in, int kmin, int kmax,
		 int pre, int frac_out, struct cdm_err *err);
int nl_cdm_rsqrt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int kmin, int kmax, int pre,
		 struct cdm_err *err);

/* out[r*cols + c] = y[r*cols + c] * g(x[r]), g = 1/x (rsqrt = 0) or
 * 1/sqrt(x), cols = y->n / x->n, in 9 rounds (inv.c): x at frac_in >= F
 * bits (compared after an exact shift to F bits, +2 rounds, when
 * kmax + frac_in > 35), y at frac_y bits, out at frac_out bits;
 * |y g(x)| < 2^ybits. g clamps to g(2^kmin) below 2^kmin (also x <= 0)
 * and to g(2^kmax) at and above 2^kmax. Relative error <= 2.4e-4 (1/x),
 * 9e-5 (rsqrt) plus the quantisation of y and out; 16 (kmax - kmin) + 1
 * comparisons per row. out: zeroed or y->n elements. */
int nl_inv_mul(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_in, int kmin, int kmax,
	       int rsqrt, const cdm_shr *y, int frac_y, int ybits, int frac_out,
	       struct cdm_err *err);

int nl_cdm_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
	      struct cdm_err *err);
int nl_spu_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
	      struct cdm_err *err);
int nl_cipherdm_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
		   struct cdm_err *err);
/* SPU pieces reused by softmax and norm. */
int nl_spu_exp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int nl_spu_recip(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int nl_spu_rsqrt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int nl_chexp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);

#endif
