/*
 * nonlin core: vector helpers, batched threshold comparisons, exact segment
 * selection, Chebyshev trees, the piecewise-table evaluator and power-of-two
 * bucketing (the shared machinery of the three suites).
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"

int nl_new(cdm_shr *v, int k, size_t n, struct cdm_err *err)
{
	for (int i = 0; i < k; i++)
		memset(&v[i], 0, sizeof v[i]);
	for (int i = 0; i < k; i++) {
		int rc = cdm_shr_new(&v[i], n, err);
		if (rc < 0) {
			nl_free(v, i);
			return rc;
		}
	}
	return 0;
}

void nl_free(cdm_shr *v, int k)
{
	for (int i = 0; i < k; i++)
		cdm_shr_free(&v[i]);
}

cdm_shr nl_view(const cdm_shr *s, size_t off, size_t n)
{
	cdm_shr v = {.n = n, .a = s->a + off, .b = s->b + off};
	return v;
}

uint64_t nl_enc(double v, int frac)
{
	/* Constants here are small; ldexp + llround is exact for |v| 2^frac
	 * below 2^62. */
	double s = ldexp(v, frac);
	if (s > 0x1p62)
		s = 0x1p62;
	if (s < -0x1p62)
		s = -0x1p62;
	return (uint64_t)(int64_t)llround(s);
}

void nl_axpy(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c, int acc)
{
	(void)m;
	for (size_t k = 0; k < x->n; k++) {
		out->a[k] = (acc ? out->a[k] : 0) + x->a[k] * c;
		out->b[k] = (acc ? out->b[k] : 0) + x->b[k] * c;
	}
}

void nl_shl(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int s)
{
	cdm_mpc_mul_int(m, out, x, (uint64_t)1 << s);
}

int nl_mul_shift(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y, int shift,
		 struct cdm_err *err)
{
	if (shift == cdm_mpc_frac(m))
		return cdm_mpc_mul_trunc(m, out, x, y, err);
	cdm_shr t = {0};
	int rc = cdm_mpc_mul(m, &t, x, y, err);
	if (rc == 0)
		rc = shift > 0 ? cdm_mpc_trunc(m, out, &t, shift, err) : cdm_shr_copy(out, &t, err);
	cdm_shr_free(&t);
	return rc;
}

int nl_cmp_consts(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		  int pre, struct cdm_err *err)
{
	size_t n = x->n;
	int F = cdm_mpc_frac(m);
	cdm_shr xs = {0}, d = {0}, b = {0};
	int rc = 0;
	if (pre > 0)
		rc = cdm_mpc_trunc(m, &xs, x, pre, err);
	const cdm_shr *src = pre > 0 ? &xs : x;
	if (rc == 0)
		rc = cdm_shr_new(&d, n * (size_t)K, err);
	if (rc == 0) {
		/* d_k = x - t_k for every threshold, back to back: one ltz. */
		for (int k = 0; k < K; k++) {
			cdm_shr dk = nl_view(&d, (size_t)k * n, n);
			cdm_mpc_add_const(m, &dk, src, (uint64_t)0 - nl_enc(ldexp(t[k], -pre), F));
		}
		rc = cdm_mpc_ltz(m, &b, &d, err);
	}
	for (int k = 0; rc == 0 && k < K; k++) {
		memcpy(bits[k].a, b.a + (size_t)k * n, n * 8);
		memcpy(bits[k].b, b.b + (size_t)k * n, n * 8);
	}
	cdm_shr_free(&xs);
	cdm_shr_free(&d);
	cdm_shr_free(&b);
	return rc;
}

int nl_seg_select(cdm_mpc *m, cdm_shr *out, const cdm_shr *P, const cdm_shr *b, int K,
		  struct cdm_err *err)
{
	size_t n = P[0].n;
	cdm_shr D = {0}, B = {0}, R = {0};
	if (!out->a && !out->b && out->n == 0)
		CDM_TRY(cdm_shr_new(out, n, err));
	int rc = nl_new(&D, 1, n * (size_t)K, err);
	if (rc == 0)
		rc = nl_new(&B, 1, n * (size_t)K, err);
	if (rc == 0) {
		for (int k = 0; k < K; k++) {
			cdm_shr dk = nl_view(&D, (size_t)k * n, n);
			cdm_shr bk = nl_view(&B, (size_t)k * n, n);
			cdm_mpc_sub(m, &dk, &P[k], &P[k + 1]);
			memcpy(bk.a, b[k].a, n * 8);
			memcpy(bk.b, b[k].b, n * 8);
		}
		rc = cdm_mpc_mul(m, &R, &B, &D, err);
	}
	if (rc == 0) {
		memcpy(out->a, P[K].a, n * 8);
		memcpy(out->b, P[K].b, n * 8);
		for (int k = 0; k < K; k++) {
			cdm_shr rk = nl_view(&R, (size_t)k * n, n);
			cdm_mpc_add(m, out, out, &rk);
		}
	}
	cdm_shr_free(&D);
	cdm_shr_free(&B);
	cdm_shr_free(&R);
	return rc;
}

/* One tree level: T[j] for j in (have, 2*have] from T[1..have] with
 * T[j] = 2 T[h] T[j-h] - T[|2h - j|], h = have, for each of the nmap
 * blocks of n elements whose degree mdeg[b] reaches j: one call. */
static int cheb_level(cdm_mpc *m, cdm_shr *T, int have, const int *mdeg, int nmap, size_t n,
		      struct cdm_err *err)
{
	int deg = 0, cnt = 0, rc;
	for (int b = 0; b < nmap; b++)
		deg = mdeg[b] > deg ? mdeg[b] : deg;
	int top = 2 * have < deg ? 2 * have : deg;
	for (int j = have + 1; j <= top; j++)
		for (int b = 0; b < nmap; b++)
			cnt += j <= mdeg[b];
	cdm_shr X = {0}, Y = {0}, Z = {0};
	rc = nl_new(&X, 1, n * (size_t)cnt, err);
	if (rc == 0)
		rc = nl_new(&Y, 1, n * (size_t)cnt, err);
	size_t o = 0;
	for (int j = have + 1; rc == 0 && j <= top; j++)
		for (int b = 0; b < nmap; b++) {
			if (j > mdeg[b])
				continue;
			size_t off = (size_t)b * n;
			memcpy(X.a + o, T[have].a + off, n * 8), memcpy(X.b + o, T[have].b + off, n * 8);
			memcpy(Y.a + o, T[j - have].a + off, n * 8);
			memcpy(Y.b + o, T[j - have].b + off, n * 8);
			o += n;
		}
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &Z, &X, &Y, err);
	uint64_t one = nl_enc(1.0, cdm_mpc_frac(m));
	o = 0;
	for (int j = have + 1; rc == 0 && j <= top; j++)
		for (int b = 0; b < nmap; b++) {
			if (j > mdeg[b])
				continue;
			int r = 2 * have - j < 0 ? j - 2 * have : 2 * have - j;
			cdm_shr zi = nl_view(&Z, o, n), tj = nl_view(&T[j], (size_t)b * n, n);
			cdm_shr tr = nl_view(&T[r], (size_t)b * n, n);
			o += n;
			cdm_mpc_mul_int(m, &tj, &zi, 2);
			if (r == 0)
				cdm_mpc_add_const(m, &tj, &tj, (uint64_t)0 - one);
			else
				cdm_mpc_sub(m, &tj, &tj, &tr);
		}
	cdm_shr_free(&X);
	cdm_shr_free(&Y);
	cdm_shr_free(&Z);
	return rc;
}

int nl_cheb_tree(cdm_mpc *m, cdm_shr *T, const cdm_shr *w, const int *mdeg, int nmap,
		 struct cdm_err *err)
{
	int deg = 0;
	for (int b = 0; b < nmap; b++)
		deg = mdeg[b] > deg ? mdeg[b] : deg;
	CDM_TRY(cdm_shr_copy(&T[1], w, err));
	for (int have = 1; have < deg; have *= 2)
		CDM_TRY(cheb_level(m, T, have, mdeg, nmap, w->n / (size_t)nmap, err));
	return 0;
}

/* w_m = ((v * a_m) >> shift) + b_m for every map, in one truncation. */
static int pw_maps(cdm_mpc *m, const struct nl_pw *f, cdm_shr *W, const cdm_shr *x,
		   struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	size_t n = x->n;
	cdm_shr v = {0}, va = {0};
	int rc = 0;
	if (f->sq)
		rc = cdm_mpc_mul(m, &v, x, x, err);
	else
		rc = cdm_shr_copy(&v, x, err);
	if (rc == 0)
		rc = nl_new(&va, 1, n * (size_t)f->nmap, err);
	for (int j = 0; rc == 0 && j < f->nmap; j++) {
		cdm_shr vj = nl_view(&va, (size_t)j * n, n);
		cdm_mpc_mul_int(m, &vj, &v, (uint64_t)f->a[j]);
	}
	if (rc == 0)
		rc = cdm_mpc_trunc(m, W, &va, f->shift + (f->sq ? F : 0), err);
	for (int j = 0; rc == 0 && j < f->nmap; j++) {
		cdm_shr wj = nl_view(W, (size_t)j * n, n);
		cdm_mpc_add_const(m, &wj, &wj, nl_enc(f->b[j], F));
	}
	cdm_shr_free(&v);
	cdm_shr_free(&va);
	return rc;
}

/* S_m = sum_k c_mk T_k(w_m), truncated to F (times x when odd). */
static int pw_sums(cdm_mpc *m, const struct nl_pw *f, cdm_shr *S, const cdm_shr *T,
		   const cdm_shr *x, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	size_t n = x->n;
	cdm_shr acc = {0}, s = {0};
	int rc = nl_new(&acc, 1, n * (size_t)f->nmap, err);
	for (int j = 0; rc == 0 && j < f->nmap; j++) {
		cdm_shr aj = nl_view(&acc, (size_t)j * n, n);
		/* c_0 T_0 = c_0, at scale 2F */
		cdm_mpc_add_const(m, &aj, &aj, nl_enc(f->cheb[j][0], 2 * F));
		for (int k = 1; k <= f->mdeg[j]; k++) {
			cdm_shr tk = nl_view(&T[k], (size_t)j * n, n);
			nl_axpy(m, &aj, &tk, nl_enc(f->cheb[j][k], F), 1);
		}
	}
	if (rc == 0)
		rc = cdm_mpc_trunc(m, f->odd ? &s : S, &acc, F, err);
	if (rc == 0 && f->odd) {
		cdm_shr xx = {0};
		rc = cdm_shr_new(&xx, n * (size_t)f->nmap, err);
		for (int j = 0; rc == 0 && j < f->nmap; j++) {
			memcpy(xx.a + (size_t)j * n, x->a, n * 8);
			memcpy(xx.b + (size_t)j * n, x->b, n * 8);
		}
		if (rc == 0)
			rc = cdm_mpc_mul_trunc(m, S, &xx, &s, err);
		cdm_shr_free(&xx);
	}
	cdm_shr_free(&acc);
	cdm_shr_free(&s);
	return rc;
}

int nl_pw_eval(cdm_mpc *m, const struct nl_pw *f, cdm_shr *out, const cdm_shr *x,
	       struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), K = f->nbrk, rc;
	size_t n = x->n;
	cdm_shr bits[NL_MAX_BRK], P[NL_MAX_BRK + 1], T[NL_MAX_DEG + 1], W = {0}, S = {0},
		sel = {0};
	memset(T, 0, sizeof T);
	if ((rc = nl_new(bits, K, n, err)) < 0)
		return rc;
	if ((rc = nl_new(P, K + 1, n, err)) < 0) {
		nl_free(bits, K);
		return rc;
	}
	rc = nl_cmp_consts(m, bits, x, f->brk, K, 0, err);
	if (rc == 0)
		rc = nl_new(&W, 1, n * (size_t)f->nmap, err);
	if (rc == 0)
		rc = pw_maps(m, f, &W, x, err);
	for (int k = 1; rc == 0 && k <= f->deg; k++)
		rc = cdm_shr_new(&T[k], W.n, err);
	if (rc == 0)
		rc = nl_cheb_tree(m, T, &W, f->mdeg, f->nmap, err);
	if (rc == 0)
		rc = nl_new(&S, 1, W.n, err);
	if (rc == 0)
		rc = pw_sums(m, f, &S, T, x, err);
	/* Segment values at scale 2F (lin1*x is exact there; S_m is lifted
	 * by 2^F); the selection is exact and one truncation ends it. */
	for (int j = 0; rc == 0 && j <= K; j++) {
		nl_axpy(m, &P[j], x, nl_enc(f->lin1[j], F), 0);
		cdm_mpc_add_const(m, &P[j], &P[j], nl_enc(f->lin0[j], 2 * F));
		if (f->segmap[j] >= 0) {
			cdm_shr sj = nl_view(&S, (size_t)f->segmap[j] * n, n);
			nl_axpy(m, &P[j], &sj, (uint64_t)1 << F, 1);
		}
	}
	if (rc == 0)
		rc = nl_new(&sel, 1, n, err);
	if (rc == 0)
		rc = nl_seg_select(m, &sel, P, bits, K, err);
	if (rc == 0)
		rc = cdm_mpc_trunc(m, out, &sel, F, err);
	nl_free(bits, K);
	nl_free(P, K + 1);
	nl_free(T, NL_MAX_DEG + 1);
	cdm_shr_free(&W);
	cdm_shr_free(&S);
	cdm_shr_free(&sel);
	return rc;
}

int nl_buckets(cdm_mpc *m, cdm_shr *g, const cdm_shr *x, int kmin, int kmax, int pre,
	       int xbits, struct cdm_err *err)
{
	double t[64];
	int K = kmax - kmin + 1;
	if (K > 64)
		return cdm_fail(err, CDM_EINTERNAL, "nonlin: %d buckets", K);
	for (int k = 0; k < K; k++)
		t[k] = ldexp(1.0, kmin + k + xbits);
	return nl_cmp_consts(m, g, x, t, K, pre + xbits, err);
}

void nl_bucket_lincomb(cdm_mpc *m, cdm_shr *out, const cdm_shr *g, int kmin, int kmax,
		       const uint64_t *val)
{
	/* buckets 0 (bottom) .. K (top), K = kmax-kmin+1 bits g[0..K-1]:
	 * sum = val[K] + sum_k g[k] (val[k] - val[k+1]). */
	int K = kmax - kmin + 1;
	size_t n = g[0].n;
	for (size_t i = 0; i < n; i++)
		out->a[i] = out->b[i] = 0;
	cdm_mpc_add_const(m, out, out, val[K]);
	for (int k = 0; k < K; k++)
		nl_axpy(m, out, &g[k], val[k] - val[k + 1], 1);
}

void nl_bcast_rows(cdm_shr *out, const cdm_shr *v, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < cols; c++) {
			out->a[r * cols + c] = v->a[r];
			out->b[r * cols + c] = v->b[r];
		}
}

void nl_sum_rows(cdm_shr *out, const cdm_shr *x, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++) {
		uint64_t a = 0, b = 0;
		for (size_t c = 0; c < cols; c++) {
			a += x->a[r * cols + c];
			b += x->b[r * cols + c];
		}
		out->a[r] = a;
		out->b[r] = b;
	}
}
