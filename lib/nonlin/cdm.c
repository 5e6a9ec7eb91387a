/*
 * nonlin, suite `cdm`: our protocols. Piecewise Chebyshev tables for the
 * activations (coef.h), a range-reduced exp at 28 fraction bits, and
 * bucket-normalised Newton iterations for reciprocal and rsqrt.
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"
#include "coef.h"

#define NL_EXP_FLOOR 16.0 /* exp(-16) = 1.1e-7: below 1 LSB at F = 20 */

/* Fraction bits of the exp core's p and its squarings (values <= 1). */
#define NL_EXP_XBITS 8

/* Compute first, select last: p(z)^(2^K), z = x/2^K + 8/2^K, is evaluated
 * on the UNCLAMPED x and the result is multiplied by the exact 0/1
 * indicator I = [-16 <= x < 0] at the end (I = [x >= -16] without
 * clamp_pos). Outside [-16, 0) the polynomial and its squarings may
 * overflow into garbage; an exact 0 times garbage is 0 in the ring, so the
 * output is 0 below -16 (exp(-16) is 0.1 LSB) and, with clamp_pos, exactly
 * 1 at x >= 0. Two cores (coef.h), both 21 rounds:
 *  - narrow (the exp op, output at F bits, whose rounding leaves no room
 *    for more error): K = 3, degree 6, relative error 3e-6 before the 8x
 *    of the squarings. Comparisons 5 (z^2 riding along), z^3 and z^4 3,
 *    the polynomial's dot 3, squarings 3 x 3, selection 1.
 *  - wide (softmax, output at F + 8 bits): K = 4, degree 4, 1.6e-5 before
 *    the 16x. Comparisons 5, the polynomial in ONE dot on z^2 (3),
 *    squarings 4 x 3, selection 1: one product per element fewer.
 *
 * Scales: the integer x is y = x/2^K at Fy = F + K bits for free, so is
 * z; z^2 (and z^3, z^4) at P = F bits (|z| <= 1 inside: every power <= 1);
 * the polynomial's dot at T = 59 bits (p <= 1), then p at Fi bits. */
#define NL_EXP_T 59

struct exp_poly {
	int K;           /* squarings */
	const double *a; /* coefficients, a[0] first */
};

/* narrow: p = acc + z^3 (a5 z^2) + z^4 (a6 z^2), acc the local terms up
 * to z^4, a5 and a6 with 19 coefficient bits */
static int exp_poly6(cdm_mpc *m, cdm_shr *p, const cdm_shr *z, const cdm_shr *z2, int Fi,
		     struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), Fy = F + NL_EXP_K, P = F, T = NL_EXP_T, Eb = T - P, rc;
	size_t n = z->n;
	const double *a = nl_exp_poly;
	cdm_shr A = {0}, B = {0}, z34 = {0}, Y = {0}, acc = {0};
	rc = nl_new_raw(&A, 2 * n, err);
	if (rc == 0)
		rc = nl_new_raw(&B, 2 * n, err);
	if (rc == 0) { /* [z^3 ; z^4] = [z^2 ; z^2] * [z ; z^2 2^(Fy-P)] >> Fy */
		cdm_shr a0 = nl_view(&A, 0, n), a1 = nl_view(&A, n, n);
		cdm_shr b0 = nl_view(&B, 0, n), b1 = nl_view(&B, n, n);
		nl_axpy(m, &a0, z2, 1, 0), nl_axpy(m, &a1, z2, 1, 0);
		nl_axpy(m, &b0, z, 1, 0);
		nl_shl(m, &b1, z2, Fy - P);
		rc = nl_mul_shift(m, &z34, &A, &B, Fy, err);
	}
	if (rc == 0)
		rc = nl_new(&Y, 1, 2 * n, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, n, err);
	if (rc == 0) {
		cdm_shr z3 = nl_view(&z34, 0, n), z4 = nl_view(&z34, n, n);
		cdm_shr y0 = nl_view(&Y, 0, n), y1 = nl_view(&Y, n, n);
		nl_axpy(m, &y0, z2, nl_enc(a[5], Eb - P), 0);
		nl_axpy(m, &y1, z2, nl_enc(a[6], Eb - P), 0);
		cdm_mpc_add_const(m, &acc, &acc, nl_enc(a[0], T));
		nl_axpy(m, &acc, z, nl_enc(a[1], T - Fy), 1);
		nl_axpy(m, &acc, z2, nl_enc(a[2], T - P), 1);
		nl_axpy(m, &acc, &z3, nl_enc(a[3], T - P), 1);
		nl_axpy(m, &acc, &z4, nl_enc(a[4], T - P), 1);
		rc = cdm_mpc_dot_trunc(m, p, &z34, &Y, 2, &acc, T - Fi, err);
	}
	cdm_shr_free(&A), cdm_shr_free(&B), cdm_shr_free(&z34);
	cdm_shr_free(&Y), cdm_shr_free(&acc);
	return rc;
}

/* wide: p = acc + z^2 (a3 z + a4 z^2), acc = a0 + a1 z + a2 z^2; a3 gets
 * T - P - Fy = 15 coefficient bits (|z^3| <= 1/8 keeps its rounding at
 * 2e-6 of p), a4 19 */
static int exp_poly4(cdm_mpc *m, cdm_shr *p, const cdm_shr *z, const cdm_shr *z2, int Fi,
		     struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), Fy = F + NL_EXPW_K, P = F, T = NL_EXP_T, Eb = T - P, rc;
	const double *a = nl_expw_poly;
	cdm_shr Y = {0}, acc = {0};
	rc = nl_new(&Y, 1, z->n, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, z->n, err);
	if (rc == 0) {
		nl_axpy(m, &Y, z, nl_enc(a[3], Eb - Fy), 1);
		nl_axpy(m, &Y, z2, nl_enc(a[4], Eb - P), 1);
		cdm_mpc_add_const(m, &acc, &acc, nl_enc(a[0], T));
		nl_axpy(m, &acc, z, nl_enc(a[1], T - Fy), 1);
		nl_axpy(m, &acc, z2, nl_enc(a[2], T - P), 1);
		rc = cdm_mpc_dot_trunc(m, p, z2, &Y, 1, &acc, T - Fi, err);
	}
	cdm_shr_free(&Y), cdm_shr_free(&acc);
	return rc;
}

int nl_cdm_exp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_out, int clamp_pos,
	       struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), Fi = F + NL_EXP_XBITS, K = clamp_pos ? 2 : 1, rc;
	int wide = frac_out >= Fi, S = wide ? NL_EXPW_K : NL_EXP_K, Fy = F + S, P = F;
	size_t n = x->n;
	const double t[2] = {-NL_EXP_FLOOR, 0.0};
	cdm_shr bits[2], I = {0}, z = {0}, z2 = {0}, p = {0}, e = {0};
	if ((rc = nl_new(bits, K, n, err)) < 0)
		return rc;
	rc = nl_new(&z, 1, n, err);
	if (rc == 0) { /* z = y + 8/2^S at Fy bits; z^2 rides along the comparisons */
		cdm_mpc_add_const(m, &z, x, nl_enc(8.0 / (1 << S), Fy));
		struct nl_ride ride = {&z2, &z, &z, 2 * Fy - P};
		rc = nl_cmp_consts_ride(m, bits, x, t, K, 0, &ride, err);
	}
	if (rc == 0)
		rc = wide ? exp_poly4(m, &p, &z, &z2, Fi, err) : exp_poly6(m, &p, &z, &z2, Fi, err);
	for (int s = 0; rc == 0 && s < S; s++) {
		int last = s == S - 1;
		cdm_shr sq = {0};
		rc = nl_mul_shift(m, last ? &e : &sq, &p, &p, last ? 2 * Fi - frac_out : Fi, err);
		if (rc == 0 && !last)
			memcpy(p.a, sq.a, n * 8), memcpy(p.b, sq.b, n * 8);
		cdm_shr_free(&sq);
	}
	if (rc == 0)
		rc = nl_new(&I, 1, n, err);
	if (rc == 0) { /* the selection; exactly 1 at x >= 0 */
		if (clamp_pos)
			cdm_mpc_sub(m, &I, &bits[1], &bits[0]);
		else
			cdm_mpc_add_const(m, &I, &I, 1), cdm_mpc_sub(m, &I, &I, &bits[0]);
		rc = cdm_mpc_mul(m, out, &I, &e, err);
	}
	if (rc == 0 && clamp_pos) {
		uint64_t one = nl_enc(1.0, frac_out);
		cdm_mpc_add_const(m, out, out, one);
		nl_axpy(m, out, &bits[1], (uint64_t)0 - one, 1);
	}
	nl_free(bits, K);
	cdm_shr_free(&I), cdm_shr_free(&z), cdm_shr_free(&z2), cdm_shr_free(&p), cdm_shr_free(&e);
	return rc;
}

/* Normalise x (at frac_in bits) into c in [0.5, 1) by power-of-two
 * buckets: c = x * 2^-k for x in [2^(k-1), 2^k); outside [2^kmin,
 * 2^kmax), c = 0.75 (the caller's output scale h then clamps). Also
 * returns h = sum onehot * hval (at hfrac bits). Comparisons are exact to
 * 1 LSB of x >> pre, so near small thresholds c may leave [0.5, 1) by up
 * to 2^(pre-F-k+1) relative; the guesses are fitted on [0.375, 1.25]. */
static int normalise(cdm_mpc *m, cdm_shr *c, cdm_shr *h, const cdm_shr *x, int frac_in,
		     int kmin, int kmax, int pre, const uint64_t *hval, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), K = kmax - kmin + 1, rc;
	size_t n = x->n;
	cdm_shr g[64], f = {0}, c0 = {0};
	uint64_t fval[66], cval[66];
	if ((rc = nl_new(g, K, n, err)) < 0)
		return rc;
	rc = nl_buckets(m, g, x, kmin, kmax, pre, frac_in - F, err);
	fval[0] = fval[K] = 0;
	cval[0] = cval[K] = nl_enc(0.75, frac_in);
	for (int b = 1; b < K; b++) {
		fval[b] = nl_enc(ldexp(1.0, -(kmin + b)), F);
		cval[b] = 0;
	}
	if (rc == 0)
		rc = nl_new(&f, 1, n, err);
	if (rc == 0)
		rc = nl_new(&c0, 1, n, err);
	if (rc == 0) {
		nl_bucket_lincomb(m, &f, g, kmin, kmax, fval);
		nl_bucket_lincomb(m, &c0, g, kmin, kmax, cval);
		nl_bucket_lincomb(m, h, g, kmin, kmax, hval);
		rc = nl_mul_shift(m, c, x, &f, F, err);
	}
	if (rc == 0)
		cdm_mpc_add(m, c, c, &c0);
	nl_free(g, K);
	cdm_shr_free(&f);
	cdm_shr_free(&c0);
	return rc;
}

/* Quadratic first guess at P bits from c at P bits. */
static int guess(cdm_mpc *m, cdm_shr *r, const cdm_shr *c, const double *g, int P,
		 struct cdm_err *err)
{
	cdm_shr c2 = {0}, acc = {0};
	int rc = nl_mul_shift(m, &c2, c, c, P, err);
	if (rc == 0)
		rc = cdm_shr_new(&acc, c->n, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &acc, &acc, nl_enc(g[0], 2 * P));
		nl_axpy(m, &acc, c, nl_enc(g[1], P), 1);
		nl_axpy(m, &acc, &c2, nl_enc(g[2], P), 1);
		rc = cdm_mpc_trunc(m, r, &acc, P, err);
	}
	cdm_shr_free(&c2);
	cdm_shr_free(&acc);
	return rc;
}

/* Output scale bits for h so that r (< 2^1.5 at P bits) times h (<= hmax
 * = 2^hlog) stays below 2^62. */
static int hbits(int P, int hlog, int frac_out)
{
	int G = frac_out + 8;
	if (G > 60 - P - hlog)
		G = 60 - P - hlog;
	return G;
}

int nl_cdm_recip(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_in, int kmin, int kmax,
		 int pre, int frac_out, struct cdm_err *err)
{
	int K = kmax - kmin + 1, P = frac_in, G = hbits(P, kmin < 0 ? -kmin : 0, frac_out), rc;
	size_t n = x->n;
	uint64_t hval[66];
	hval[0] = nl_enc(0.75 * ldexp(1.0, -kmin), G);
	hval[K] = nl_enc(0.75 * ldexp(1.0, -kmax), G);
	for (int b = 1; b < K; b++)
		hval[b] = nl_enc(ldexp(1.0, -(kmin + b)), G);
	cdm_shr c = {0}, h = {0}, r = {0}, e = {0}, t = {0};
	rc = nl_new(&c, 1, n, err);
	if (rc == 0)
		rc = nl_new(&h, 1, n, err);
	if (rc == 0)
		rc = normalise(m, &c, &h, x, frac_in, kmin, kmax, pre, hval, err);
	if (rc == 0)
		rc = nl_new(&r, 1, n, err);
	if (rc == 0)
		rc = guess(m, &r, &c, nl_recip_guess, P, err);
	/* Newton: r <- r (2 - c r); relative error squares each step. */
	for (int it = 0; rc == 0 && it < 2; it++) {
		cdm_shr_free(&e);
		cdm_shr_free(&t);
		rc = nl_mul_shift(m, &e, &c, &r, P, err);
		if (rc == 0) {
			cdm_mpc_mul_int(m, &e, &e, (uint64_t)-1);
			cdm_mpc_add_const(m, &e, &e, nl_enc(2.0, P));
			rc = nl_mul_shift(m, &t, &r, &e, P, err);
		}
		if (rc == 0)
			memcpy(r.a, t.a, n * 8), memcpy(r.b, t.b, n * 8);
	}
	if (rc == 0)
		rc = nl_mul_shift(m, out, &r, &h, P + G - frac_out, err);
	cdm_shr_free(&c), cdm_shr_free(&h), cdm_shr_free(&r);
	cdm_shr_free(&e), cdm_shr_free(&t);
	return rc;
}

int nl_cdm_rsqrt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int kmin, int kmax, int pre,
		 struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), P = F, K = kmax - kmin + 1;
	int G = hbits(P, kmin < 0 ? (-kmin + 1) / 2 : 0, F), rc;
	size_t n = x->n;
	uint64_t hval[66];
	double s75 = sqrt(0.75);
	hval[0] = nl_enc(s75 * pow(2.0, -kmin / 2.0), G);
	hval[K] = nl_enc(s75 * pow(2.0, -kmax / 2.0), G);
	for (int b = 1; b < K; b++)
		hval[b] = nl_enc(pow(2.0, -(kmin + b) / 2.0), G);
	cdm_shr c = {0}, h = {0}, r = {0}, e = {0}, t = {0};
	rc = nl_new(&c, 1, n, err);
	if (rc == 0)
		rc = nl_new(&h, 1, n, err);
	if (rc == 0)
		rc = normalise(m, &c, &h, x, F, kmin, kmax, pre, hval, err);
	if (rc == 0)
		rc = nl_new(&r, 1, n, err);
	if (rc == 0)
		rc = guess(m, &r, &c, nl_rsqrt_guess, P, err);
	/* Newton: r <- r (3 - c r^2) / 2 */
	for (int it = 0; rc == 0 && it < 2; it++) {
		cdm_shr_free(&e);
		cdm_shr_free(&t);
		rc = nl_mul_shift(m, &t, &c, &r, P, err);
		if (rc == 0)
			rc = nl_mul_shift(m, &e, &t, &r, P, err);
		if (rc == 0) {
			cdm_mpc_mul_int(m, &e, &e, (uint64_t)-1);
			cdm_mpc_add_const(m, &e, &e, nl_enc(3.0, P));
			cdm_shr_free(&t);
			rc = nl_mul_shift(m, &t, &r, &e, P + 1, err);
		}
		if (rc == 0)
			memcpy(r.a, t.a, n * 8), memcpy(r.b, t.b, n * 8);
	}
	if (rc == 0)
		rc = nl_mul_shift(m, out, &r, &h, P + G - F, err);
	cdm_shr_free(&c), cdm_shr_free(&h), cdm_shr_free(&r);
	cdm_shr_free(&e), cdm_shr_free(&t);
	return rc;
}

int nl_cdm_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
	      struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	switch (op) {
	case CDM_NL_EXP: return nl_cdm_exp(m, out, x, F, 1, err);
	/* x/32 < 2^15 for x < 2^20: every comparison stays in range. */
	case CDM_NL_RECIPROCAL: return nl_cdm_recip(m, out, x, F, -14, 20, 5, F, err);
	case CDM_NL_RSQRT: return nl_cdm_rsqrt(m, out, x, -14, 20, 5, err);
	case CDM_NL_SIGMOID: return nl_pw_eval(m, &nl_pw_sigmoid, out, x, err);
	case CDM_NL_TANH: return nl_pw_eval(m, &nl_pw_tanh, out, x, err);
	case CDM_NL_SILU: return nl_pw_eval(m, &nl_pw_silu, out, x, err);
	case CDM_NL_GELU: return nl_pw_eval(m, &nl_pw_gelu, out, x, err);
	case CDM_NL_MISH: return nl_pw_eval(m, &nl_pw_mish, out, x, err);
	case CDM_NL_SOFTPLUS: return nl_pw_eval(m, &nl_pw_softplus, out, x, err);
	default: return cdm_fail(err, CDM_EINPUT, "nonlin: unknown op %d", (int)op);
	}
}
