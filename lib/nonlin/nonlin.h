/*
 * nonlin: secure nonlinear functions on replicated sharings (lib/mpc), in
 * three protocol suites selected at run time.
 *
 * Owns: the approximations (polynomials, splines, Newton iterations), their
 * domains and clamping, and the suite choice. Does not own: the protocols
 * underneath (mul, truncation, comparison -- lib/mpc) or cost labels: these
 * functions never call cdm_mpc_set_label, so their traffic is charged to
 * whatever label the caller set (conv, silu, attention, ...).
 *
 * Conventions. Inputs and outputs are fixed point with F = cdm_mpc_frac(m)
 * fraction bits (default 20); all elements share the same rounds (one
 * message per peer per round). out may not alias x. Comparisons are exact
 * for |v| < 2^(CDM_CMP_BITS-1-F) = 32768, so every domain below assumes
 * |x| < 32768; beyond it no function can clamp.
 * Errors: 0 or a negative CDM_E* code with err filled (network failures
 * from lib/mpc pass through with their message).
 * Thread-safety: as the cdm_mpc (one thread).
 *
 * Suites (errors measured by tests/unit/test_nonlin.c and cdm-bench ops
 * against a double reference at F = 20; "abs" = max absolute error):
 *
 *  cdm (default, ours). One batched comparison call per function; the
 *  segment indicators select the INPUT (x_m = I_m x, exact 0/1 products), so
 *  outside its segment a polynomial sees 0 and every value stays bounded
 *  (huge inputs never wrap into the result). The polynomial's input map
 *  (a x^2 or a x, truncated) is computed on the unselected x in the rounds
 *  of the comparisons (cdm_mpc_ltz_dot_trunc) and selected with the input,
 *  which turns its garbage outside the segment into an exact 0. Chebyshev sums on a quantised
 *  map of x_m or x_m^2 (coefficients from scripts/fit_nonlin.py): T_1..T_H,
 *  H = ceil(deg/2), by a product tree, then the polynomial, the segment
 *  constants and slopes in ONE dot product with a fused truncation
 *  (T_{H+i} = 2 T_H T_i - T_{H-i}; see core.c). Integer tail slopes
 *  (x above the last breakpoint) are one exact product x * L.
 *   silu     R, abs <= 6e-4: 0 below -9.9, x above 9.9, x/2 + even(x^2) degree 13
 *            (degrees 11-13 evaluate from T_1..T_5 and T_8 = 2 T_4^2 - 1: 5
 *            tree products instead of 6, same rounds; see core.c)
 *   gelu     R, abs <= 4e-4: 0 / x beyond +-3.8, x/2 + even part degree 7 (erf form)
 *   softplus R, abs <= 6e-4: 0 / x beyond +-7.7, x/2 + log(2cosh(x/2)) degree 8
 *   sigmoid  R, abs <= 6e-4: 0 / 1 beyond +-7.7, 1/2 + x*R(x^2) degree 8
 *   tanh     R, abs <= 6e-4: -+(1 + tanh(3.76))/2 beyond +-3.76 (half the
 *            tail error of -+1), x*R(x^2) degree 8: sigmoid's tree, 18 rounds
 *   mish     R, abs <= 6e-4: 0 below -9.9, x above 5.2, x-segments split at 0.5, degrees 10, 6
 *   exp      (-inf, 0]: relative <= 1e-3 where exp(x) >= 1e-3 (measured with the
 *            1-LSB output quantisation included), 0 below -16, never negative;
 *            x > 0 is clamped to 0 (exp = 1): an exp for max-subtracted inputs.
 *            p6(x/8 + 1)^8 at 28 fraction bits on the unclamped x (z^2
 *            riding along the comparisons with -16 and 0, z^3 and z^4 in
 *            one product, p6 in one dot), then one exact product with the
 *            0/1 indicator of [-16, 0) kills what overflowed outside: 21
 *            rounds (cdm.c).
 *   reciprocal [2^-14, 2^20) (covers [1e-4, 1e6]): relative <= 1e-3 where
 *            1/x >= 2^-F * 1000, else abs <= 2 LSB; x < 2^-14 (also <= 0) gives
 *            2^14, x >= 2^20 gives 2^-20. Normalise by 35 comparisons of x/32
 *            against powers of two (one call), quadratic guess, 2 Newton steps.
 *   rsqrt    same domain and measure; x < 2^-14 gives 2^7, x >= 2^20 gives 2^-10.
 *   softmax  rows (max-subtracted by a comparison tree): exp at 28 bits (the
 *            wide core: degree 4 after 4 halvings, relative 2.6e-4, one
 *            product per element fewer than the exp op's; cdm.c), then
 *            e * (1/sum) per row in one go (inv.c: 16 buckets per octave of
 *            the sum, each its minimax line, the slope products riding the
 *            comparisons; 9 rounds, 11 when 2^(klog+1) at 28 bits needs a
 *            shift into the comparison range, cols > 64); L1 error
 *            per row <= 1e-3 for cols <= 2048 at F output bits (the
 *            output's rounding adds ~cols * 2^-F / 4 in L1: 4096 -> 1.3e-3),
 *            for any cols at F + 6 (cdm_nl_softmax_rows_frac; 4096 -> 5e-5).
 *   norm     (x - mean) * rsqrt(var + eps) per row; squares truncated before
 *            summing; var + eps bucketed by 1/16 octaves over [2^-18, 2^14)
 *            and (x - mean) * rsqrt evaluated as in softmax (inv.c), 16
 *            rounds; the elementwise rsqrt/reciprocal keep the Newton route
 *            below (their x/32 comparisons are too coarse for it).
 *
 *  spu (baseline: reference/spu.md 2, SPU's defaults, no extra clamping).
 *   exp      Taylor (1 + x/256)^256: fine on [-8, 8]; wrong for x >~ 18 (overflow)
 *            and x < -256 (negative base). Relative error ~ x^2/512.
 *   reciprocal Goldschmidt: sign, normalise |x| to [0.5, 1) by 34 comparisons
 *            against 2^k (k = -19..14, one call -- our stand-in for SPU's
 *            prefix-or bit scan), w = 2.9142 - 2c, 2 iterations (~14 bits).
 *            Domain 2^-19 <= |x| < 2^15.
 *   rsqrt    same normalisation to [0.25, 0.5), degree-4 polynomial, no Newton.
 *   sigmoid  1/(1 + exp(-x)); silu x*sigmoid(x); both break for x < -18.
 *   tanh     Chebyshev degree 17 on [-5, 5] after clamping (SPU's tanh).
 *   gelu     x/2 (1 + erf(x/sqrt2)), erf by A&S 7.1.27 on |z|, 1 for |z| >= 3.
 *   softplus log(1 + exp(x)), log by normalisation to [1, 2) and SPU's degree-8
 *            polynomial; domain x < ~10.
 *   mish     x * ((1+e^x)^2 - 1) / ((1+e^x)^2 + 1) with SPU exp and reciprocal
 *            (the tanh(log(1+e^x)) identity); domain ~[-256, 5].
 *   softmax  tree max, Taylor exp, one Goldschmidt reciprocal per row.
 *   norm     mean, variance, SPU rsqrt.
 *
 *  cipherdm (reference/cipherdm.md 2): SiLU and Mish by its 4-segment
 *  polynomials (breakpoints -6, -2, 6; abs ~0.075 and ~0.13), exp by its
 *  degree-7 Chebyshev on [-14, 0] times [x > -14] (abs ~0.05, negative near
 *  -11.8), softmax with that exp; everything else as spu.
 */
#ifndef CDM_NONLIN_H
#define CDM_NONLIN_H

#include <stddef.h>

#include "../base/base.h"
#include "../mpc/mpc.h"

enum cdm_suite { CDM_SUITE_CDM, CDM_SUITE_SPU, CDM_SUITE_CIPHERDM };

/* "cdm", "spu" or "cipherdm" -> suite; -1 for anything else. */
int cdm_suite_parse(const char *name);
const char *cdm_suite_name(enum cdm_suite s);

/* Elementwise functions, out[i] = f(x[i]). out is either zeroed (then
 * allocated here; free with cdm_shr_free) or holds exactly x->n elements. */
int cdm_nl_exp(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_reciprocal(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
		      struct cdm_err *err);
int cdm_nl_rsqrt(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_sigmoid(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
		   struct cdm_err *err);
int cdm_nl_tanh(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_silu(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_gelu(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_mish(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
int cdm_nl_softplus(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
		    struct cdm_err *err);

/* Softmax over each row of a rows x cols matrix (x->n == rows*cols). */
int cdm_nl_softmax_rows(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			size_t rows, size_t cols, struct cdm_err *err);
/* The same with the probabilities at frac_out bits (F..F+8) -- same bytes
 * and rounds. A long row needs them: at F bits the output's rounding alone
 * costs ~cols * 2^-F / 4 of L1 (1e-3 for rows of 4096). The baseline
 * suites compute at F and shift (no gain in accuracy). */
int cdm_nl_softmax_rows_frac(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			     size_t rows, size_t cols, int frac_out, struct cdm_err *err);
/* The extra fraction bits the attention layers keep on the probabilities
 * (taken back by the truncation of the product with V, which costs the
 * same): rows of 4096 then lose ~2e-5 of L1 to rounding instead of ~1e-3. */
#define CDM_NL_SOFTMAX_EXTRA_BITS 6
/* (x - mean) * rsqrt(var + eps) per row (biased variance, as GroupNorm /
 * LayerNorm); gamma and beta are the caller's. eps > 0. */
int cdm_nl_norm_rows(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
		     size_t rows, size_t cols, double eps, struct cdm_err *err);

/* The same with the affine map fused in: out = norm * gamma + beta, gamma
 * and beta given per element (n = rows*cols each; NULL = 1 and 0). The
 * product with gamma rides in the round of the squares and the final
 * product, so the affine map costs no round of its own (the caller's
 * norm, mul_trunc, add costs 3 more rounds). Domain: |gamma| sqrt(cols) <
 * 2^(36-F) (F = 20: |gamma| < 1024 for rows of 4096), |d gamma| < 2^(62-2F). */
int cdm_nl_norm_rows_affine(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			    size_t rows, size_t cols, double eps, const cdm_shr *gamma,
			    const cdm_shr *beta, struct cdm_err *err);

/* The elementwise functions by number (for benchmarks and tests). */
enum cdm_nl_op {
	CDM_NL_EXP, CDM_NL_RECIPROCAL, CDM_NL_RSQRT, CDM_NL_SIGMOID, CDM_NL_TANH,
	CDM_NL_SILU, CDM_NL_GELU, CDM_NL_MISH, CDM_NL_SOFTPLUS, CDM_NL_NOPS
};
int cdm_nl_apply(cdm_mpc *m, enum cdm_suite s, enum cdm_nl_op op, cdm_shr *out,
		 const cdm_shr *x, struct cdm_err *err);
const char *cdm_nl_op_name(enum cdm_nl_op op);

#endif
