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
	/* two plain loops the compiler vectorises */
	uint64_t *oa = out->a, *ob = out->b;
	const uint64_t *xa = x->a, *xb = x->b;
	size_t n = x->n;
	if (acc) {
		for (size_t k = 0; k < n; k++)
			oa[k] += xa[k] * c;
		for (size_t k = 0; k < n; k++)
			ob[k] += xb[k] * c;
	} else {
		for (size_t k = 0; k < n; k++)
			oa[k] = xa[k] * c;
		for (size_t k = 0; k < n; k++)
			ob[k] = xb[k] * c;
	}
}

int nl_new_raw(cdm_shr *v, size_t n, struct cdm_err *err)
{
	memset(v, 0, sizeof *v);
	v->a = cdm_alloc(n, 8, err);
	v->b = v->a ? cdm_alloc(n, 8, err) : NULL;
	if (!v->b) {
		cdm_free(v->a);
		v->a = NULL;
		return CDM_ENOMEM;
	}
	v->n = n;
	return 0;
}

void nl_shl(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int s)
{
	cdm_mpc_mul_int(m, out, x, (uint64_t)1 << s);
}

int nl_mul_shift(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y, int shift,
		 struct cdm_err *err)
{
	/* one product with the truncation fused in, whatever the shift */
	return cdm_mpc_dot_trunc(m, out, x, y, 1, NULL, shift, err);
}

/* nl_cmp_consts, optionally with a product riding along (ride != NULL:
 * cdm_mpc_ltz_dot_trunc, no extra round). */
static int cmp_consts(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		      int pre, const struct nl_ride *ride, struct cdm_err *err)
{
	size_t n = x->n;
	int F = cdm_mpc_frac(m);
	cdm_shr xs = {0}, d = {0}, b = {0};
	int rc = 0;
	if (pre > 0)
		rc = cdm_mpc_trunc(m, &xs, x, pre, err);
	const cdm_shr *src = pre > 0 ? &xs : x;
	if (rc == 0) /* every block is written below */
		rc = nl_new_raw(&d, n * (size_t)K, err);
	if (rc == 0) {
		/* d_k = x - t_k for every threshold, back to back: one ltz. */
		for (int k = 0; k < K; k++) {
			cdm_shr dk = nl_view(&d, (size_t)k * n, n);
			cdm_mpc_add_const(m, &dk, src, (uint64_t)0 - nl_enc(ldexp(t[k], -pre), F));
		}
		rc = ride ? cdm_mpc_ltz_dot_trunc(m, &b, &d, ride->out, ride->x, ride->y, 1,
						  ride->shift, err)
			  : cdm_mpc_ltz(m, &b, &d, err);
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

int nl_cmp_consts(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		  int pre, struct cdm_err *err)
{
	return cmp_consts(m, bits, x, t, K, pre, NULL, err);
}

int nl_cmp_consts_ride(cdm_mpc *m, cdm_shr *bits, const cdm_shr *x, const double *t, int K,
		       int pre, const struct nl_ride *ride, struct cdm_err *err)
{
	return cmp_consts(m, bits, x, t, K, pre, ride, err);
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
	rc = nl_new_raw(&X, n * (size_t)cnt, err);
	if (rc == 0)
		rc = nl_new_raw(&Y, n * (size_t)cnt, err);
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

/* ---- piecewise tables ------------------------------------------------------
 *
 * Plan (rounds as counted by P0; C = one batched comparison call):
 *   1. bits b_k = [x < brk_k] (C); segment indicators ind_j are local
 *      differences of them (exact 0/1). The map's product M_m = (x (a_m x))
 *      >> (shift + F) for a squared map, (1 (a_m x)) >> shift for a linear
 *      one, rides along in the comparison's rounds (cdm_mpc_ltz_dot_trunc)
 *      on the unselected x: outside the segment it may be wrapped garbage.
 *   2. one multiplication round: x_m = I_m * x and w_m = I_m * M_m for
 *      each middle map m (I_m = the indicator of its segment; 0/1 integer
 *      products are exact, so the garbage becomes an exact 0) and x * L,
 *      L = sum over the tails of ind_j * slope_j (integer slopes: exact).
 *      Outside its segment x_m = w_m = 0, so everything built on them stays
 *      bounded: no selection products at the end.
 *   3. w_m += I_m b_m (local); w_m = 0 outside.
 *   4. T_1..T_H of w_m, H = ceil(deg/2), one mul_trunc per tree level.
 *   5. p_m = A_m + T_H * B_m (T_{H+i} = 2 T_H T_i - T_{H-i}), every map
 *      and every linear or constant term in ONE dot product with a fused
 *      truncation. Even tables: out = sum_m (p_m(w_m) - (1 - I_m) p_m(0))
 *      + sum_j ind_j (lin0_j + lin1_j x) directly; odd tables: R_m =
 *      p_m(w_m) first, then a second dot sum_m x_m * R_m.
 * The dot works at 2F + Fc bits (coefficients at F + Fc), Fc chosen so the
 * bounded sum stays below 2^61. */

static double cheb_val(const double *c, int deg, double w)
{
	double t0 = 1, t1 = w, s = c[0] + (deg >= 1 ? c[1] * w : 0);
	for (int k = 2; k <= deg; k++) {
		double t2 = 2 * w * t1 - t0;
		s += c[k] * t2;
		t0 = t1, t1 = t2;
	}
	return s;
}

/* Extra coefficient bits Fc for the dot at 2F + Fc (see above). */
static int pw_fc(const struct nl_pw *f, int F)
{
	double bound = 1;
	for (int j = 0; j < f->nmap; j++) {
		double s = 0;
		for (int k = 0; k <= f->mdeg[j]; k++)
			s += 3 * fabs(f->cheb[j][k]);
		bound += s + fabs(cheb_val(f->cheb[j], f->mdeg[j], 0));
	}
	double xm = 0;
	for (int k = 0; k < f->nbrk; k++)
		xm = fabs(f->brk[k]) > xm ? fabs(f->brk[k]) : xm;
	for (int j = 0; j <= f->nbrk; j++)
		bound += fabs(f->lin0[j]) + (f->segmap[j] >= 0 ? fabs(f->lin1[j]) * xm : 0);
	int fc = 61 - 2 * F - (int)ceil(log2(bound));
	return fc > F ? F : (fc < 0 ? 0 : fc);
}

struct pw_ws {
	size_t n;
	int K, M, F, Fc, H[2], Hmax, tail;
	cdm_shr ind[NL_MAX_BRK + 1]; /* segment indicators */
	cdm_shr sel;                 /* [M + tail] blocks: x_m ..., x * L */
	cdm_shr W;                   /* [M] maps */
	cdm_shr T[NL_MAX_DEG + 1];   /* Chebyshev T_1..T_Hmax of W */
};

static void pw_ws_free(struct pw_ws *s)
{
	nl_free(s->ind, s->K + 1);
	cdm_shr_free(&s->sel);
	cdm_shr_free(&s->W);
	nl_free(s->T, NL_MAX_DEG + 1);
}

/* The map products M_m of step 1, for every map at once (M blocks of n). */
static int pw_map_operands(cdm_mpc *m, const struct nl_pw *f, const struct pw_ws *s,
			   const cdm_shr *x, cdm_shr *px, cdm_shr *py, struct cdm_err *err)
{
	size_t n = s->n, nm = n * (size_t)s->M;
	CDM_TRY(nl_new_raw(px, nm, err));
	CDM_TRY(nl_new_raw(py, nm, err));
	uint64_t *one = NULL;
	if (!f->sq) { /* 1 (an integer, public) times a_m x */
		if (!(one = cdm_alloc(nm, 8, err)))
			return CDM_ENOMEM;
		for (size_t k = 0; k < nm; k++)
			one[k] = 1;
		cdm_mpc_public(m, one, px);
		cdm_free(one);
	}
	for (int j = 0; j < s->M; j++) {
		cdm_shr pj = nl_view(px, (size_t)j * n, n), yj = nl_view(py, (size_t)j * n, n);
		if (f->sq) {
			memcpy(pj.a, x->a, n * 8);
			memcpy(pj.b, x->b, n * 8);
		}
		cdm_mpc_mul_int(m, &yj, x, (uint64_t)f->a[j]);
	}
	return 0;
}

/* Steps 1 to 3: indicators, the selection products, the maps. */
static int pw_select(cdm_mpc *m, const struct nl_pw *f, struct pw_ws *s, const cdm_shr *x,
		     struct cdm_err *err)
{
	size_t n = s->n, nm = n * (size_t)s->M;
	int K = s->K, rc;
	int np = s->M + s->tail;
	cdm_shr bits[NL_MAX_BRK], L = {0}, X = {0}, px = {0}, py = {0}, mp = {0}, all = {0};
	CDM_TRY(nl_new(bits, K, n, err));
	rc = pw_map_operands(m, f, s, x, &px, &py, err);
	if (rc == 0) {
		struct nl_ride ride = {&mp, &px, &py, f->sq ? f->shift + s->F : f->shift};
		rc = nl_cmp_consts_ride(m, bits, x, f->brk, K, 0, &ride, err);
	}
	if (rc == 0)
		rc = nl_new(s->ind, K + 1, n, err);
	for (int j = 0; rc == 0 && j <= K; j++) {
		if (j < K)
			cdm_shr_copy(&s->ind[j], &bits[j], err);
		else
			cdm_mpc_add_const(m, &s->ind[j], &s->ind[j], 1);
		if (j > 0)
			cdm_mpc_sub(m, &s->ind[j], &s->ind[j], &bits[j - 1]);
	}
	/* L = [I_m ... | tail slopes | I_m ...], X = [x ... | x | M_m ...] */
	size_t nsel = n * (size_t)np;
	if (rc == 0)
		rc = nl_new(&L, 1, nsel + nm, err);
	if (rc == 0)
		rc = nl_new_raw(&X, nsel + nm, err);
	for (int j = 0; rc == 0 && j <= K; j++) {
		int mj = f->segmap[j];
		cdm_shr lj = nl_view(&L, (size_t)(mj >= 0 ? mj : s->M) * n, n);
		if (mj >= 0) {
			cdm_shr lw = nl_view(&L, nsel + (size_t)mj * n, n);
			cdm_shr_copy(&lj, &s->ind[j], err);
			cdm_shr_copy(&lw, &s->ind[j], err);
		} else if (s->tail) {
			nl_axpy(m, &lj, &s->ind[j], (uint64_t)(int64_t)f->lin1[j], 1);
		}
	}
	for (int p = 0; rc == 0 && p < np; p++) {
		memcpy(X.a + (size_t)p * n, x->a, n * 8);
		memcpy(X.b + (size_t)p * n, x->b, n * 8);
	}
	if (rc == 0) {
		memcpy(X.a + nsel, mp.a, nm * 8);
		memcpy(X.b + nsel, mp.b, nm * 8);
		rc = cdm_mpc_mul(m, &all, &L, &X, err);
	}
	if (rc == 0)
		rc = nl_new_raw(&s->sel, nsel, err);
	if (rc == 0)
		rc = nl_new_raw(&s->W, nm, err);
	if (rc == 0) {
		memcpy(s->sel.a, all.a, nsel * 8), memcpy(s->sel.b, all.b, nsel * 8);
		memcpy(s->W.a, all.a + nsel, nm * 8), memcpy(s->W.b, all.b + nsel, nm * 8);
	}
	for (int j = 0; rc == 0 && j <= K; j++) { /* w_m += I_m b_m */
		if (f->segmap[j] < 0)
			continue;
		cdm_shr wj = nl_view(&s->W, (size_t)f->segmap[j] * n, n);
		nl_axpy(m, &wj, &s->ind[j], nl_enc(f->b[f->segmap[j]], s->F), 1);
	}
	nl_free(bits, K);
	cdm_shr_free(&L), cdm_shr_free(&X), cdm_shr_free(&px), cdm_shr_free(&py);
	cdm_shr_free(&mp), cdm_shr_free(&all);
	return rc;
}

/* Step 5 operands of map j: B (at F + Fc) and A (added into acc, at
 * 2F + Fc) with p_j = A + T_H * B. */
static void pw_split(cdm_mpc *m, const struct nl_pw *f, const struct pw_ws *s, int j,
		     cdm_shr *B, cdm_shr *acc)
{
	size_t n = s->n, off = (size_t)j * n;
	int H = s->H[j], F = s->F, Fc = s->Fc, d = f->mdeg[j];
	double a[NL_MAX_DEG + 1] = {0};
	for (int k = 0; k <= d; k++) {
		if (k <= H) {
			a[k] += f->cheb[j][k];
		} else {
			a[2 * H - k] -= f->cheb[j][k];
			cdm_shr tk = nl_view(&s->T[k - H], off, n);
			nl_axpy(m, B, &tk, nl_enc(2 * f->cheb[j][k], Fc), 1);
		}
	}
	cdm_mpc_add_const(m, acc, acc, nl_enc(a[0], 2 * F + Fc));
	for (int k = 1; k <= H; k++) {
		cdm_shr tk = nl_view(&s->T[k], off, n);
		nl_axpy(m, acc, &tk, nl_enc(a[k], F + Fc), 1);
	}
}

/* Step 5: the dot products; out at F. */
static int pw_final(cdm_mpc *m, const struct nl_pw *f, struct pw_ws *s, cdm_shr *out,
		    struct cdm_err *err)
{
	size_t n = s->n, nm = n * (size_t)s->M;
	int F = s->F, Fc = s->Fc, M = s->M, rc;
	int S = f->odd ? 2 * F : 2 * F + Fc; /* scale of the last dot */
	cdm_shr TH = {0}, B = {0}, acc = {0}, R = {0}, fin = {0};
	rc = nl_new(&TH, 1, nm, err);
	if (rc == 0)
		rc = nl_new(&B, 1, nm, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, f->odd ? nm : n, err);
	if (rc == 0)
		rc = nl_new(&fin, 1, n, err);
	for (int j = 0; rc == 0 && j < M; j++) {
		cdm_shr th = nl_view(&TH, (size_t)j * n, n), bj = nl_view(&B, (size_t)j * n, n);
		cdm_shr tj = nl_view(&s->T[s->H[j]], (size_t)j * n, n);
		cdm_shr aj = f->odd ? nl_view(&acc, (size_t)j * n, n) : acc;
		cdm_shr_copy(&th, &tj, err);
		pw_split(m, f, s, j, &bj, &aj);
		if (!f->odd) /* - p_j(0) everywhere, + p_j(0) where I_j = 1 below */
			cdm_mpc_add_const(m, &acc, &acc,
					  (uint64_t)0 - nl_enc(cheb_val(f->cheb[j], f->mdeg[j], 0), S));
	}
	cdm_shr *lin = f->odd ? &fin : &acc;
	for (int j = 0; rc == 0 && j <= s->K; j++) {
		int mp = f->segmap[j];
		double c0 = f->lin0[j];
		if (mp >= 0 && !f->odd)
			c0 += cheb_val(f->cheb[mp], f->mdeg[mp], 0);
		nl_axpy(m, lin, &s->ind[j], nl_enc(c0, S), 1);
		if (mp >= 0 && f->lin1[j] != 0) {
			cdm_shr xj = nl_view(&s->sel, (size_t)mp * n, n);
			nl_axpy(m, lin, &xj, nl_enc(f->lin1[j], S - F), 1);
		}
	}
	if (rc == 0 && !f->odd) {
		rc = cdm_mpc_dot_trunc(m, out, &TH, &B, (size_t)M, &acc, F + Fc, err);
	} else if (rc == 0) {
		rc = cdm_mpc_dot_trunc(m, &R, &TH, &B, 1, &acc, F + Fc, err);
		cdm_shr xm = nl_view(&s->sel, 0, nm);
		if (rc == 0)
			rc = cdm_mpc_dot_trunc(m, out, &xm, &R, (size_t)M, &fin, F, err);
	}
	if (rc == 0 && s->tail) {
		cdm_shr xl = nl_view(&s->sel, nm, n);
		cdm_mpc_add(m, out, out, &xl);
	}
	cdm_shr_free(&TH), cdm_shr_free(&B), cdm_shr_free(&acc);
	cdm_shr_free(&R), cdm_shr_free(&fin);
	return rc;
}

/* ---- degrees 11-13 from T_1..T_4, T_8 (and T_5) ------------------------------
 *
 * The half-degree tree needs T_1..T_7 (6 products, 3 levels) for degree 13.
 * With T_8 = 2 T_4^2 - 1 (and T_5 = 2 T_4 T_1 - T_3 for degree 13) as the
 * third level instead (4-5 products), every T_k, k <= 13, is
 * A + T_4 B + T_8 C with A, B, C in span(T_0..T_5):
 *   T_k = 2 T_4 T_{k-4} - T_{8-k}     (5 <= k <= 7; k = 5 direct if made)
 *   T_k = 2 T_8 T_{k-8} - T_{16-k}    (9 <= k <= 13)
 * and the final dot product takes the two terms T_4 B and T_8 C at once. */

#define PW48_MAX 13

/* Coefficients of T_k on (A, B, C) x (T_0..T_5), accumulated times c. */
static void pw48_form(int k, double c, int have5, double A[6], double B[6], double C[6])
{
	if (k <= 4 || (k == 5 && have5)) {
		A[k] += c;
	} else if (k < 8) {
		B[k - 4] += 2 * c;
		pw48_form(8 - k, -c, have5, A, B, C);
	} else if (k == 8) {
		C[0] += c;
	} else {
		C[k - 8] += 2 * c;
		pw48_form(16 - k, -c, have5, A, B, C);
	}
}

static int pw_use48(const struct nl_pw *f)
{
	return !f->odd && f->nmap == 1 && f->mdeg[0] >= 11 && f->mdeg[0] <= PW48_MAX;
}

/* Local: out (at F + Fc, or 2F + Fc with `hi`) += sum_k coef[k] T_k. */
static void pw48_span(cdm_mpc *m, cdm_shr *out, const struct pw_ws *s, const double *coef,
		      int top, int hi)
{
	int F = s->F, Fc = s->Fc;
	cdm_mpc_add_const(m, out, out, nl_enc(coef[0], (hi ? 2 * F : F) + Fc));
	for (int k = 1; k <= top; k++)
		nl_axpy(m, out, &s->T[k], nl_enc(coef[k], (hi ? F : 0) + Fc), 1);
}

/* Third level: T_8 into t8 and, for degree 13, T_5 into s->T[5]. */
static int pw48_level3(cdm_mpc *m, struct pw_ws *s, cdm_shr *t8, int have5,
		       struct cdm_err *err)
{
	size_t n = s->n, k = have5 ? 2 : 1;
	int F = s->F, rc;
	cdm_shr X = {0}, Y = {0}, Z = {0};
	rc = nl_new_raw(&X, k * n, err);
	if (rc == 0)
		rc = nl_new_raw(&Y, k * n, err);
	if (rc == 0) {
		memcpy(X.a, s->T[4].a, n * 8), memcpy(X.b, s->T[4].b, n * 8);
		memcpy(Y.a, s->T[4].a, n * 8), memcpy(Y.b, s->T[4].b, n * 8);
		if (have5) {
			memcpy(X.a + n, s->T[4].a, n * 8), memcpy(X.b + n, s->T[4].b, n * 8);
			memcpy(Y.a + n, s->T[1].a, n * 8), memcpy(Y.b + n, s->T[1].b, n * 8);
		}
		rc = cdm_mpc_mul_trunc(m, &Z, &X, &Y, err);
	}
	if (rc == 0 && have5)
		rc = cdm_shr_new(&s->T[5], n, err);
	if (rc == 0) {
		cdm_shr z8 = nl_view(&Z, 0, n);
		cdm_mpc_mul_int(m, t8, &z8, 2);
		cdm_mpc_add_const(m, t8, t8, (uint64_t)0 - nl_enc(1.0, F));
		if (have5) {
			cdm_shr z5 = nl_view(&Z, n, n);
			cdm_mpc_mul_int(m, &s->T[5], &z5, 2);
			cdm_mpc_sub(m, &s->T[5], &s->T[5], &s->T[3]);
		}
	}
	cdm_shr_free(&X), cdm_shr_free(&Y), cdm_shr_free(&Z);
	return rc;
}

static int pw_final48(cdm_mpc *m, const struct nl_pw *f, struct pw_ws *s, cdm_shr *out,
		      struct cdm_err *err)
{
	size_t n = s->n;
	int F = s->F, Fc = s->Fc, S = 2 * F + Fc, d = f->mdeg[0], have5 = d >= 13, rc;
	int top = have5 ? 5 : 4;
	double A[6] = {0}, B[6] = {0}, C[6] = {0};
	for (int k = 0; k <= d; k++)
		pw48_form(k, f->cheb[0][k], have5, A, B, C);
	cdm_shr T48 = {0}, BC = {0}, acc = {0};
	rc = nl_new(&T48, 1, 2 * n, err);
	if (rc == 0)
		rc = nl_new(&BC, 1, 2 * n, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, n, err);
	cdm_shr t4 = nl_view(&T48, 0, n), t8 = nl_view(&T48, n, n);
	if (rc == 0)
		rc = pw48_level3(m, s, &t8, have5, err);
	if (rc < 0)
		goto done;
	cdm_shr b = nl_view(&BC, 0, n), c = nl_view(&BC, n, n);
	cdm_shr_copy(&t4, &s->T[4], err);
	pw48_span(m, &b, s, B, top, 0);
	pw48_span(m, &c, s, C, top, 0);
	pw48_span(m, &acc, s, A, top, 1);
	/* - p(0) everywhere, + p(0) and the segment's linear part where its
	 * indicator is 1 (as pw_final) */
	cdm_mpc_add_const(m, &acc, &acc, (uint64_t)0 - nl_enc(cheb_val(f->cheb[0], d, 0), S));
	for (int j = 0; j <= s->K; j++) {
		int mp = f->segmap[j];
		double c0 = f->lin0[j] + (mp >= 0 ? cheb_val(f->cheb[mp], d, 0) : 0);
		nl_axpy(m, &acc, &s->ind[j], nl_enc(c0, S), 1);
		if (mp >= 0 && f->lin1[j] != 0) {
			cdm_shr xj = nl_view(&s->sel, (size_t)mp * n, n);
			nl_axpy(m, &acc, &xj, nl_enc(f->lin1[j], S - F), 1);
		}
	}
	rc = cdm_mpc_dot_trunc(m, out, &T48, &BC, 2, &acc, F + Fc, err);
	if (rc == 0 && s->tail) {
		cdm_shr xl = nl_view(&s->sel, n, n);
		cdm_mpc_add(m, out, out, &xl);
	}
done:
	cdm_shr_free(&T48), cdm_shr_free(&BC), cdm_shr_free(&acc);
	return rc;
}

int nl_pw_eval(cdm_mpc *m, const struct nl_pw *f, cdm_shr *out, const cdm_shr *x,
	       struct cdm_err *err)
{
	struct pw_ws s;
	memset(&s, 0, sizeof s);
	s.n = x->n, s.K = f->nbrk, s.M = f->nmap, s.F = cdm_mpc_frac(m);
	s.Fc = pw_fc(f, s.F);
	for (int j = 0; j <= f->nbrk; j++) {
		if (f->segmap[j] < 0 && f->lin1[j] != 0) {
			s.tail = 1;
			if (f->lin1[j] != (double)(int64_t)f->lin1[j])
				return cdm_fail(err, CDM_EINTERNAL, "nonlin: tail slope %g is not an integer",
						f->lin1[j]);
		}
	}
	for (int j = 0; j < s.M; j++) {
		s.H[j] = pw_use48(f) ? 4 : (f->mdeg[j] + 1) / 2;
		s.Hmax = s.H[j] > s.Hmax ? s.H[j] : s.Hmax;
	}
	if (pw_use48(f)) /* the mixed forms have larger coefficients: 2 bits */
		s.Fc = s.Fc > 2 ? s.Fc - 2 : 0;
	int rc = pw_select(m, f, &s, x, err);
	for (int k = 1; rc == 0 && k <= s.Hmax; k++)
		rc = cdm_shr_new(&s.T[k], s.W.n, err);
	if (rc == 0)
		rc = nl_cheb_tree(m, s.T, &s.W, s.H, s.M, err);
	if (rc == 0)
		rc = pw_use48(f) ? pw_final48(m, f, &s, out, err) : pw_final(m, f, &s, out, err);
	pw_ws_free(&s);
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
