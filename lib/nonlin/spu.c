/*
 * nonlin, suites `spu` (SPU's default approximations, reference/spu.md 2,
 * ported to our primitives) and `cipherdm` (CipherDM's piecewise SiLU/Mish
 * and Chebyshev exp, reference/cipherdm.md 2). These are baselines: they
 * keep SPU's and CipherDM's choices, including their failure ranges, so
 * that cost and accuracy can be compared with the cdm suite.
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"
#include "coef.h"

/* out = x * s for an integer sharing s (no truncation). */
static int mul_int_sh(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *s,
		      struct cdm_err *err)
{
	return cdm_mpc_mul(m, out, x, s, err);
}

/* Sign as an integer sharing: 1 - 2[x < 0]. */
static int sign_of(cdm_mpc *m, cdm_shr *s, const cdm_shr *x, struct cdm_err *err)
{
	CDM_TRY(cdm_mpc_ltz(m, s, x, err));
	cdm_mpc_mul_int(m, s, s, (uint64_t)-2);
	cdm_mpc_add_const(m, s, s, 1);
	return 0;
}

/* x times a public real, truncated. */
static int mul_real(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, double c, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	cdm_shr t = {0};
	int rc = cdm_shr_new(&t, x->n, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &t, x, nl_enc(c, F));
		rc = cdm_mpc_trunc(m, out, &t, F, err);
	}
	cdm_shr_free(&t);
	return rc;
}

/* SPU Taylor exp: (1 + x/2^8)^(2^8), no clamping. */
int nl_spu_exp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	cdm_shr t = {0}, s = {0};
	rc = cdm_mpc_trunc(m, &t, x, 8, err);
	if (rc == 0)
		cdm_mpc_add_const(m, &t, &t, nl_enc(1.0, F));
	for (int i = 0; rc == 0 && i < 8; i++) {
		cdm_shr_free(&s);
		rc = cdm_mpc_mul_trunc(m, &s, &t, &t, err);
		if (rc == 0)
			memcpy(t.a, s.a, t.n * 8), memcpy(t.b, s.b, t.n * 8);
	}
	if (rc == 0)
		rc = cdm_shr_copy(out, &t, err);
	cdm_shr_free(&t);
	cdm_shr_free(&s);
	return rc;
}

#define SPU_KMIN (-19)
#define SPU_KMAX 14

/* Factor per power-of-two bucket of |x|: value 2^e(bucket) at F bits,
 * where bucket k is [2^(k-1), 2^k); e = -k - shift. */
static void spu_factors(uint64_t *val, int shift, int F)
{
	int K = SPU_KMAX - SPU_KMIN + 1;
	val[0] = nl_enc(ldexp(1.0, -SPU_KMIN - shift), F);
	for (int b = 1; b < K; b++)
		val[b] = nl_enc(ldexp(1.0, -(SPU_KMIN + b) - shift), F);
	val[K] = nl_enc(ldexp(1.0, -(SPU_KMAX + 1) - shift), F);
}

/* Goldschmidt reciprocal, SPU's f_reciprocal: sign, normalise |x| into
 * [0.5, 1) (SPU: prefix-or bit scan; here 34 comparisons with 2^k in one
 * call), w = 2.9142 - 2c, 2 iterations, scale back, sign back. */
int nl_spu_recip(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), K = SPU_KMAX - SPU_KMIN + 1, rc;
	size_t n = x->n;
	uint64_t fval[SPU_KMAX - SPU_KMIN + 2];
	cdm_shr s = {0}, a = {0}, g[SPU_KMAX - SPU_KMIN + 1], f = {0}, c = {0}, e = {0},
		r = {0}, t = {0}, u = {0};
	if ((rc = nl_new(g, K, n, err)) < 0)
		return rc;
	rc = sign_of(m, &s, x, err);
	if (rc == 0)
		rc = mul_int_sh(m, &a, x, &s, err);
	if (rc == 0)
		rc = nl_buckets(m, g, &a, SPU_KMIN, SPU_KMAX, 0, 0, err);
	if (rc == 0)
		rc = nl_new(&f, 1, n, err);
	if (rc == 0) {
		spu_factors(fval, 0, F);
		nl_bucket_lincomb(m, &f, g, SPU_KMIN, SPU_KMAX, fval);
		rc = cdm_mpc_mul_trunc(m, &c, &a, &f, err);
	}
	/* w = 2.9142 - 2c; e = 1 - c w */
	if (rc == 0)
		rc = nl_new(&r, 1, n, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &r, &c, (uint64_t)-2);
		cdm_mpc_add_const(m, &r, &r, nl_enc(2.9142, F));
		rc = cdm_mpc_mul_trunc(m, &e, &c, &r, err);
	}
	if (rc == 0) {
		cdm_mpc_mul_int(m, &e, &e, (uint64_t)-1);
		cdm_mpc_add_const(m, &e, &e, nl_enc(1.0, F));
	}
	/* iterations: r <- r (1 + e), e <- e^2 (both in one call) */
	for (int it = 0; rc == 0 && it < 2; it++) {
		cdm_shr X = {0}, Y = {0}, Z = {0};
		int last = it == 1;
		size_t w = last ? n : 2 * n;
		rc = nl_new(&X, 1, w, err);
		if (rc == 0)
			rc = nl_new(&Y, 1, w, err);
		if (rc == 0) {
			cdm_shr y0 = nl_view(&Y, 0, n);
			memcpy(X.a, r.a, n * 8), memcpy(X.b, r.b, n * 8);
			cdm_mpc_add_const(m, &y0, &e, nl_enc(1.0, F));
			if (!last) {
				memcpy(X.a + n, e.a, n * 8), memcpy(X.b + n, e.b, n * 8);
				memcpy(Y.a + n, e.a, n * 8), memcpy(Y.b + n, e.b, n * 8);
			}
			rc = cdm_mpc_mul_trunc(m, &Z, &X, &Y, err);
		}
		if (rc == 0) {
			memcpy(r.a, Z.a, n * 8), memcpy(r.b, Z.b, n * 8);
			if (!last)
				memcpy(e.a, Z.a + n, n * 8), memcpy(e.b, Z.b + n, n * 8);
		}
		cdm_shr_free(&X), cdm_shr_free(&Y), cdm_shr_free(&Z);
	}
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &t, &r, &f, err);
	if (rc == 0)
		rc = mul_int_sh(m, &u, &t, &s, err);
	if (rc == 0)
		rc = cdm_shr_copy(out, &u, err);
	nl_free(g, K);
	cdm_shr_free(&s), cdm_shr_free(&a), cdm_shr_free(&f), cdm_shr_free(&c);
	cdm_shr_free(&e), cdm_shr_free(&r), cdm_shr_free(&t), cdm_shr_free(&u);
	return rc;
}

/* Powers x^2..x^d by a log-depth tree (one mul_trunc call per level):
 * p[i] = x^i, p[1] a copy of x. */
static int powers(cdm_mpc *m, cdm_shr *p, const cdm_shr *x, int d, struct cdm_err *err)
{
	size_t n = x->n;
	CDM_TRY(cdm_shr_copy(&p[1], x, err));
	for (int have = 1; have < d; have *= 2) {
		int top = 2 * have < d ? 2 * have : d, cnt = top - have, rc;
		cdm_shr X = {0}, Y = {0}, Z = {0};
		rc = nl_new(&X, 1, n * (size_t)cnt, err);
		if (rc == 0)
			rc = nl_new(&Y, 1, n * (size_t)cnt, err);
		for (int i = 0; rc == 0 && i < cnt; i++) {
			int j = have + 1 + i;
			memcpy(X.a + i * n, p[have].a, n * 8), memcpy(X.b + i * n, p[have].b, n * 8);
			memcpy(Y.a + i * n, p[j - have].a, n * 8);
			memcpy(Y.b + i * n, p[j - have].b, n * 8);
		}
		if (rc == 0)
			rc = cdm_mpc_mul_trunc(m, &Z, &X, &Y, err);
		for (int i = 0; rc == 0 && i < cnt; i++) {
			cdm_shr zi = nl_view(&Z, (size_t)i * n, n);
			rc = cdm_shr_copy(&p[have + 1 + i], &zi, err);
		}
		cdm_shr_free(&X), cdm_shr_free(&Y), cdm_shr_free(&Z);
		CDM_TRY(rc);
	}
	return 0;
}

/* out = trunc(sum_i c[i] p[i]) with p[1..d] at F, c[0] the constant. */
static int poly_sum(cdm_mpc *m, cdm_shr *out, const cdm_shr *p, const double *c, int d,
		    struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	cdm_shr acc = {0};
	rc = cdm_shr_new(&acc, p[1].n, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &acc, &acc, nl_enc(c[0], 2 * F));
		for (int i = 1; i <= d; i++)
			nl_axpy(m, &acc, &p[i], nl_enc(c[i], F), 1);
		rc = cdm_mpc_trunc(m, out, &acc, F, err);
	}
	cdm_shr_free(&acc);
	return rc;
}

/* SPU rsqrt: normalise to u in [0.25, 0.5), degree-4 polynomial, times
 * 2^(-(k+1)/2); no Newton step. */
int nl_spu_rsqrt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	static const double c[5] = {4.14285016, -15.47994394, 38.4714796, -49.86605845,
				    26.02942339};
	int F = cdm_mpc_frac(m), K = SPU_KMAX - SPU_KMIN + 1, rc;
	size_t n = x->n;
	uint64_t fval[SPU_KMAX - SPU_KMIN + 2], cval[SPU_KMAX - SPU_KMIN + 2];
	cdm_shr g[SPU_KMAX - SPU_KMIN + 1], f = {0}, h = {0}, u = {0}, p[5], y = {0};
	memset(p, 0, sizeof p);
	if ((rc = nl_new(g, K, n, err)) < 0)
		return rc;
	rc = nl_buckets(m, g, x, SPU_KMIN, SPU_KMAX, 0, 0, err);
	spu_factors(fval, 1, F);
	cval[0] = nl_enc(pow(2.0, (SPU_KMIN + 1) / 2.0), F);
	for (int b = 1; b < K; b++)
		cval[b] = nl_enc(pow(2.0, -(SPU_KMIN + b + 1) / 2.0), F);
	cval[K] = nl_enc(pow(2.0, -(SPU_KMAX + 2) / 2.0), F);
	if (rc == 0)
		rc = nl_new(&f, 1, n, err);
	if (rc == 0)
		rc = nl_new(&h, 1, n, err);
	if (rc == 0) {
		nl_bucket_lincomb(m, &f, g, SPU_KMIN, SPU_KMAX, fval);
		nl_bucket_lincomb(m, &h, g, SPU_KMIN, SPU_KMAX, cval);
		rc = cdm_mpc_mul_trunc(m, &u, x, &f, err);
	}
	if (rc == 0)
		rc = powers(m, p, &u, 4, err);
	if (rc == 0)
		rc = poly_sum(m, &y, p, c, 4, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, out, &y, &h, err);
	nl_free(g, K);
	nl_free(p, 5);
	cdm_shr_free(&f), cdm_shr_free(&h), cdm_shr_free(&u), cdm_shr_free(&y);
	return rc;
}

/* SPU log (LOG_MINMAX) for y >= 1: normalise into [1, 2), degree-8
 * polynomial in t = y/2^(k-1) - 1, plus (k-1) ln 2. */
static int spu_log_ge1(cdm_mpc *m, cdm_shr *out, const cdm_shr *y, struct cdm_err *err)
{
	static const double c[9] = {0, 0.9999964239, -0.4998741238, 0.3317990258,
				    -0.2407338084, 0.1676540711, -0.0953293897, 0.0360884937,
				    -0.0064535442};
	enum { KMIN = 1, KMAX = 15, K = KMAX - KMIN + 1 };
	int F = cdm_mpc_frac(m), rc;
	size_t n = y->n;
	uint64_t fval[K + 1], lval[K + 1];
	cdm_shr g[K], f = {0}, l = {0}, t = {0}, p[9], s = {0};
	memset(p, 0, sizeof p);
	if ((rc = nl_new(g, K, n, err)) < 0)
		return rc;
	rc = nl_buckets(m, g, y, KMIN, KMAX, 0, 0, err);
	for (int b = 0; b <= K; b++) {
		int k = b == 0 ? 1 : KMIN + b; /* bucket [2^(k-1), 2^k) */
		fval[b] = nl_enc(ldexp(1.0, -(k - 1)), F);
		lval[b] = nl_enc((k - 1) * M_LN2, F);
	}
	if (rc == 0)
		rc = nl_new(&f, 1, n, err);
	if (rc == 0)
		rc = nl_new(&l, 1, n, err);
	if (rc == 0) {
		nl_bucket_lincomb(m, &f, g, KMIN, KMAX, fval);
		nl_bucket_lincomb(m, &l, g, KMIN, KMAX, lval);
		rc = cdm_mpc_mul_trunc(m, &t, y, &f, err);
	}
	if (rc == 0) {
		cdm_mpc_add_const(m, &t, &t, (uint64_t)0 - nl_enc(1.0, F));
		rc = powers(m, p, &t, 8, err);
	}
	if (rc == 0)
		rc = poly_sum(m, &s, p, c, 8, err);
	if (rc == 0) {
		CDM_TRY(cdm_shr_copy(out, &s, err));
		cdm_mpc_add(m, out, out, &l);
	}
	nl_free(g, K);
	nl_free(p, 9);
	cdm_shr_free(&f), cdm_shr_free(&l), cdm_shr_free(&t), cdm_shr_free(&s);
	return rc;
}

/* SPU tanh: clamp to [-5, 5], odd Chebyshev terms T_1..T_17 of x/5 by the
 * recurrence T_{2k+1} = 2 T_2 T_{2k-1} - T_{2k-3} (CrypTen's), dot with
 * the coefficients. */
static int spu_tanh(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	size_t n = x->n;
	const double t[2] = {-5.0, 5.0};
	cdm_shr b[2], P[3], xc = {0}, xs = {0}, sq = {0}, y = {0}, T[9], acc = {0};
	memset(T, 0, sizeof T);
	if ((rc = nl_new(b, 2, n, err)) < 0)
		return rc;
	if ((rc = nl_new(P, 3, n, err)) < 0) {
		nl_free(b, 2);
		return rc;
	}
	rc = nl_cmp_consts(m, b, x, t, 2, 0, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &P[0], &P[0], nl_enc(-5.0, F));
		memcpy(P[1].a, x->a, n * 8), memcpy(P[1].b, x->b, n * 8);
		cdm_mpc_add_const(m, &P[2], &P[2], nl_enc(5.0, F));
		rc = nl_new(&xc, 1, n, err);
	}
	if (rc == 0)
		rc = nl_seg_select(m, &xc, P, b, 2, err);
	if (rc == 0)
		rc = mul_real(m, &xs, &xc, 0.2, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &sq, &xs, &xs, err);
	if (rc == 0)
		rc = nl_new(&y, 1, n, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &y, &sq, 4);
		cdm_mpc_add_const(m, &y, &y, (uint64_t)0 - nl_enc(2.0, F)); /* 2 T_2 */
		rc = cdm_shr_copy(&T[0], &xs, err);
	}
	if (rc == 0) {
		cdm_shr z = {0};
		rc = cdm_shr_copy(&z, &y, err);
		if (rc == 0) {
			cdm_mpc_add_const(m, &z, &z, (uint64_t)0 - nl_enc(1.0, F));
			rc = cdm_mpc_mul_trunc(m, &T[1], &xs, &z, err);
		}
		cdm_shr_free(&z);
	}
	for (int k = 2; rc == 0 && k < 9; k++) {
		rc = cdm_mpc_mul_trunc(m, &T[k], &y, &T[k - 1], err);
		if (rc == 0)
			cdm_mpc_sub(m, &T[k], &T[k], &T[k - 2]);
	}
	if (rc == 0)
		rc = cdm_shr_new(&acc, n, err);
	for (int k = 0; rc == 0 && k < 9; k++)
		nl_axpy(m, &acc, &T[k], nl_enc(nl_spu_tanh_cheb[k], F), 1);
	if (rc == 0)
		rc = cdm_mpc_trunc(m, out, &acc, F, err);
	nl_free(b, 2), nl_free(P, 3), nl_free(T, 9);
	cdm_shr_free(&xc), cdm_shr_free(&xs), cdm_shr_free(&sq), cdm_shr_free(&y);
	cdm_shr_free(&acc);
	return rc;
}

/* 1/(1 + exp(-x)) */
static int spu_sigmoid(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	cdm_shr nx = {0}, e = {0};
	rc = cdm_shr_new(&nx, x->n, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &nx, x, (uint64_t)-1);
		rc = nl_spu_exp(m, &e, &nx, err);
	}
	if (rc == 0) {
		cdm_mpc_add_const(m, &e, &e, nl_enc(1.0, F));
		rc = nl_spu_recip(m, out, &e, err);
	}
	cdm_shr_free(&nx), cdm_shr_free(&e);
	return rc;
}

/* erf by A&S 7.1.27 on |z|, 1 for |z| >= 3; gelu = x/2 (1 + erf(x/sqrt2)). */
static int spu_gelu(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	static const double c[5] = {1.0, 0.278393, 0.230389, 0.000972, 0.078108};
	int F = cdm_mpc_frac(m), rc;
	size_t n = x->n;
	cdm_shr z = {0}, s = {0}, a = {0}, p[5], q = {0}, q2 = {0}, q4 = {0}, r = {0}, lt3 = {0},
		d = {0}, ea = {0}, er = {0};
	memset(p, 0, sizeof p);
	rc = mul_real(m, &z, x, M_SQRT1_2, err);
	if (rc == 0)
		rc = sign_of(m, &s, &z, err);
	if (rc == 0)
		rc = mul_int_sh(m, &a, &z, &s, err);
	if (rc == 0)
		rc = powers(m, p, &a, 4, err);
	if (rc == 0)
		rc = poly_sum(m, &q, p, c, 4, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &q2, &q, &q, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &q4, &q2, &q2, err);
	if (rc == 0)
		rc = nl_spu_recip(m, &r, &q4, err);
	/* erf|z| = 1 - r below 3, else 1: 1 - [|z| < 3] r */
	if (rc == 0) {
		const double three = 3.0;
		rc = nl_new(&lt3, 1, n, err);
		if (rc == 0)
			rc = nl_cmp_consts(m, &lt3, &a, &three, 1, 0, err);
	}
	if (rc == 0)
		rc = cdm_mpc_mul(m, &d, &lt3, &r, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &d, &d, (uint64_t)-1);
		cdm_mpc_add_const(m, &d, &d, nl_enc(1.0, F));
		rc = mul_int_sh(m, &er, &d, &s, err);
	}
	if (rc == 0) {
		cdm_mpc_add_const(m, &er, &er, nl_enc(1.0, F));
		rc = nl_mul_shift(m, out, x, &er, F + 1, err);
	}
	nl_free(p, 5);
	cdm_shr_free(&z), cdm_shr_free(&s), cdm_shr_free(&a), cdm_shr_free(&q);
	cdm_shr_free(&q2), cdm_shr_free(&q4), cdm_shr_free(&r), cdm_shr_free(&lt3);
	cdm_shr_free(&d), cdm_shr_free(&ea), cdm_shr_free(&er);
	return rc;
}

/* softplus = log(1 + exp(x)) */
static int spu_softplus(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	cdm_shr e = {0};
	int rc = nl_spu_exp(m, &e, x, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &e, &e, nl_enc(1.0, cdm_mpc_frac(m)));
		rc = spu_log_ge1(m, out, &e, err);
	}
	cdm_shr_free(&e);
	return rc;
}

/* mish = x tanh(log(1 + e^x)) = x (q - 1)/(q + 1), q = (1 + e^x)^2 */
static int spu_mish(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	cdm_shr e = {0}, q = {0}, den = {0}, r = {0}, t = {0};
	rc = nl_spu_exp(m, &e, x, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &e, &e, nl_enc(1.0, F));
		rc = cdm_mpc_mul_trunc(m, &q, &e, &e, err);
	}
	if (rc == 0)
		rc = cdm_shr_copy(&den, &q, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &den, &den, nl_enc(1.0, F));
		cdm_mpc_add_const(m, &q, &q, (uint64_t)0 - nl_enc(1.0, F));
		rc = nl_spu_recip(m, &r, &den, err);
	}
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &t, &q, &r, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, out, x, &t, err);
	cdm_shr_free(&e), cdm_shr_free(&q), cdm_shr_free(&den), cdm_shr_free(&r);
	cdm_shr_free(&t);
	return rc;
}

int nl_spu_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
	      struct cdm_err *err)
{
	switch (op) {
	case CDM_NL_EXP: return nl_spu_exp(m, out, x, err);
	case CDM_NL_RECIPROCAL: return nl_spu_recip(m, out, x, err);
	case CDM_NL_RSQRT: return nl_spu_rsqrt(m, out, x, err);
	case CDM_NL_SIGMOID: return spu_sigmoid(m, out, x, err);
	case CDM_NL_TANH: return spu_tanh(m, out, x, err);
	case CDM_NL_SILU: {
		cdm_shr s = {0};
		int rc = spu_sigmoid(m, &s, x, err);
		if (rc == 0)
			rc = cdm_mpc_mul_trunc(m, out, x, &s, err);
		cdm_shr_free(&s);
		return rc;
	}
	case CDM_NL_GELU: return spu_gelu(m, out, x, err);
	case CDM_NL_MISH: return spu_mish(m, out, x, err);
	case CDM_NL_SOFTPLUS: return spu_softplus(m, out, x, err);
	default: return cdm_fail(err, CDM_EINPUT, "nonlin: unknown op %d", (int)op);
	}
}

/* ---- cipherdm ------------------------------------------------------------- */

/* CipherDM 4-segment template (breakpoints -6, -2, 6): 0 | a0 + a1 x + a2 x^2
 * | b0 + b1 x + b2 x^2 + b3 x^4 + b4 x^6 | x; x^2, x^4, x^6 by 3 sequential
 * multiplications, as in its hack_silu. */
static int cipherdm_pw(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const double *a,
		       const double *bq, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	size_t n = x->n;
	const double t[3] = {-6.0, -2.0, 6.0};
	cdm_shr bits[3], P[4], x2 = {0}, x4 = {0}, x6 = {0}, sel = {0};
	if ((rc = nl_new(bits, 3, n, err)) < 0)
		return rc;
	if ((rc = nl_new(P, 4, n, err)) < 0) {
		nl_free(bits, 3);
		return rc;
	}
	rc = nl_cmp_consts(m, bits, x, t, 3, 0, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &x2, x, x, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &x4, &x2, &x2, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &x6, &x2, &x4, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &P[1], &P[1], nl_enc(a[0], 2 * F));
		nl_axpy(m, &P[1], x, nl_enc(a[1], F), 1);
		nl_axpy(m, &P[1], &x2, nl_enc(a[2], F), 1);
		cdm_mpc_add_const(m, &P[2], &P[2], nl_enc(bq[0], 2 * F));
		nl_axpy(m, &P[2], x, nl_enc(bq[1], F), 1);
		nl_axpy(m, &P[2], &x2, nl_enc(bq[2], F), 1);
		nl_axpy(m, &P[2], &x4, nl_enc(bq[3], F), 1);
		nl_axpy(m, &P[2], &x6, nl_enc(bq[4], F), 1);
		nl_axpy(m, &P[3], x, (uint64_t)1 << F, 0);
		rc = nl_new(&sel, 1, n, err);
	}
	if (rc == 0)
		rc = nl_seg_select(m, &sel, P, bits, 3, err);
	if (rc == 0)
		rc = cdm_mpc_trunc(m, out, &sel, F, err);
	nl_free(bits, 3), nl_free(P, 4);
	cdm_shr_free(&x2), cdm_shr_free(&x4), cdm_shr_free(&x6), cdm_shr_free(&sel);
	return rc;
}

/* CipherDM chexp: degree-7 Chebyshev on [-14, 0] in u = x/7 + 1, powers by
 * a chain of 6 multiplications, times [x > -14]. */
int nl_chexp(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	size_t n = x->n;
	const double t = -14.0;
	cdm_shr b = {0}, P[2], u[8], acc = {0};
	memset(u, 0, sizeof u);
	if ((rc = nl_new(P, 2, n, err)) < 0)
		return rc;
	rc = nl_new(&b, 1, n, err);
	if (rc == 0)
		rc = nl_cmp_consts(m, &b, x, &t, 1, 0, err);
	if (rc == 0)
		rc = mul_real(m, &u[1], x, 1.0 / 7.0, err);
	if (rc == 0)
		cdm_mpc_add_const(m, &u[1], &u[1], nl_enc(1.0, F));
	for (int k = 2; rc == 0 && k <= 7; k++)
		rc = cdm_mpc_mul_trunc(m, &u[k], &u[k - 1], &u[1], err);
	if (rc == 0)
		rc = cdm_shr_new(&acc, n, err);
	if (rc == 0) {
		cdm_mpc_add_const(m, &acc, &acc, nl_enc(nl_chexp_mono[0], 2 * F));
		for (int k = 1; k <= 7; k++)
			nl_axpy(m, &acc, &u[k], nl_enc(nl_chexp_mono[k], F), 1);
		rc = cdm_mpc_trunc(m, &P[1], &acc, F, err);
	}
	if (rc == 0)
		rc = nl_seg_select(m, out, P, &b, 1, err);
	nl_free(P, 2), nl_free(u, 8);
	cdm_shr_free(&b), cdm_shr_free(&acc);
	return rc;
}

int nl_cipherdm_op(cdm_mpc *m, enum cdm_nl_op op, cdm_shr *out, const cdm_shr *x,
		   struct cdm_err *err)
{
	static const double silu_a[3] = {-0.52212664, -0.16910363, -0.01420163};
	static const double silu_b[5] = {0.03453821, 0.49379432, 0.19784596, -0.00602401,
					 0.00008032};
	static const double mish_a[3] = {-0.55684445, -0.18375535, -0.01572019};
	static const double mish_b[5] = {0.07559242, 0.54902050, 0.20152583, -0.00735309,
					 0.00010786};
	switch (op) {
	case CDM_NL_SILU: return cipherdm_pw(m, out, x, silu_a, silu_b, err);
	case CDM_NL_MISH: return cipherdm_pw(m, out, x, mish_a, mish_b, err);
	case CDM_NL_EXP: return nl_chexp(m, out, x, err);
	default: return nl_spu_op(m, op, out, x, err);
	}
}
