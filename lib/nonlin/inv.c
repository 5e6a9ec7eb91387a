/*
 * nonlin, suite `cdm`: y * x^-1 and y * x^-1/2 for a positive x per row, in
 * 17 rounds (the Newton route of cdm.c takes 34 plus the product with y),
 * with one product on the y tensor; everything else is per row.
 *
 *  1. Buckets (5 rounds): one batched comparison of x against the encoded
 *     thresholds T_j ~ 2^(kmin + j/q), q = 2 per octave for 1/sqrt x, 3 for
 *     1/x. A bucket [T_{j-1}, T_j) has the public lower edge L_j (the
 *     encoded threshold itself, so c = x / L_j >= 1 exactly, and c < R --
 *     1.5 or 1.27 -- even where tiny thresholds round; checked). Every
 *     per-bucket constant is a local lincomb of the 0/1 bits.
 *  2. W round (3): w = (x / L - mid) / half in [-1, 1] (mid, half of
 *     [1, R]; x times the lincomb of 1/(half L_j)). h = g(L_j) (g = 1/x or
 *     1/sqrt x) is local, g(x) = h g(c).
 *  3. A round (3): s = w^2 and hw = h w in one message.
 *  4. B round (3): hp = b0 h + b1 hw + hw (b2 w + b3 s) ~ h g(c) (degree 3
 *     in w, coefficients from scripts/fit_nonlin.py, relative error
 *     <= 2.8e-5 for 1/x, 6.3e-5 for 1/sqrt x): one product plus addend.
 *  5. C round (3): out = y * hp.
 * Outside [T_0, T_last) w = 0 and h = g(edge) / b0: the result clamps to
 * g(2^kmin) below and g(2^kmax) at and above (x <= 0 lands below).
 *
 * Scales: w, s at P = 14 bits (p'(w) is ~0.16, so 2^-14 in w is ~1e-5 in
 * p); x / (half L_j) at P + S = 56 bits (< 10 * 2^56); h, hw, hp at Gh bits
 * with the smallest h kept to >= 2^15 units; the B products at Gh + P + Ec
 * bits, Ec (coefficient bits, >= 13) taking what is left below 2^60 after
 * the largest |h|.
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"
#include "coef.h"

#define INV_P 14 /* fraction bits of w and s */
#define INV_S 42 /* shift of the W product */

/* Per-bucket constants of one call. */
struct inv_plan {
	int q;               /* buckets per octave: 2 (rsqrt) or 3 (recip) */
	double R;            /* the polynomial covers c in [1, R] */
	int J;               /* thresholds; buckets 0..J */
	double t[INV_MAX_T]; /* thresholds as passed to nl_cmp_consts */
	double L[INV_MAX_T]; /* encoded lower edges (real), L[j-1] for bucket j */
};

static double inv_g(int rsqrt, double v) { return rsqrt ? 1 / sqrt(v) : 1 / v; }

/* Local: out = sum over buckets of onehot_j * val[j] (val[0..J], bottom
 * first) from the monotone bits b_j = [x < T_j]. */
static void inv_lincomb(cdm_mpc *m, cdm_shr *out, const cdm_shr *bits, int J,
			const uint64_t *val)
{
	memset(out->a, 0, out->n * 8);
	memset(out->b, 0, out->n * 8);
	cdm_mpc_add_const(m, out, out, val[J]);
	for (int j = 0; j < J; j++)
		nl_axpy(m, out, &bits[j], val[j] - val[j + 1], 1);
}

/* Thresholds and edges; 0, or -1 when a bucket would be wider than the
 * polynomial's [1, R] (thresholds of a few LSB round coarsely). */
static int inv_plan_build(struct inv_plan *pl, int rsqrt, int frac_in, int kmin, int kmax,
			  int F)
{
	pl->q = rsqrt ? 2 : 3;
	pl->R = rsqrt ? NL_INV_RSQRT_R : NL_INV_RECIP_R;
	pl->J = pl->q * (kmax - kmin) + 1;
	if (pl->J > INV_MAX_T)
		return -1;
	for (int j = 0; j < pl->J; j++) {
		/* encode at frac_in bits, hand over as an exact F-bit value */
		double T = (double)llround(ldexp(pow(2.0, (double)j / pl->q), kmin + frac_in));
		pl->L[j] = ldexp(T, -frac_in);
		pl->t[j] = ldexp(T, -F);
		if (j > 0 && pl->L[j] > pl->R * pl->L[j - 1])
			return -1;
	}
	return 0;
}

int nl_inv_mul(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_in, int kmin, int kmax,
	       int rsqrt, const cdm_shr *y, int frac_y, int ybits, int frac_out,
	       struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), P = INV_P, S = INV_S, rc;
	size_t rows = x->n, n = y->n, cols = rows ? n / rows : 0;
	int pre = frac_in - F; /* comparisons run at F bits */
	const double *b = rsqrt ? nl_inv_rsqrt : nl_inv_recip;
	double hmax = inv_g(rsqrt, ldexp(1.0, kmin)) / b[0], hmin = inv_g(rsqrt, ldexp(1.0, kmax));
	int Gh = 15 - (int)floor(log2(hmin)), hb = (int)ceil(log2(hmax));
	int Ec = 60 - Gh - P - hb, E = P + S - frac_in, shC = frac_y + Gh - frac_out;
	struct inv_plan pl;
	int bad = inv_plan_build(&pl, rsqrt, frac_in, kmin, kmax, F);
	double mid = (1 + pl.R) / 2, half = (pl.R - 1) / 2;
	/* |x / (L half)| <= R / half < 10: the W product stays below 2^61 */
	if (bad || rows == 0 || n % rows || pre < 0 || Ec < 13 || pl.R / half > 10 ||
	    ldexp(1 / half, E - kmax) < 0x1p16 || shC < 1 || ybits + frac_y + Gh > 60)
		return cdm_fail(err, CDM_EINTERNAL,
				"nonlin inv: unsupported scales (in %d, y %d, out %d bits, 2^%d..2^%d)",
				frac_in, frac_y, frac_out, kmin, kmax);
	uint64_t fval[INV_MAX_T + 1], hval[INV_MAX_T + 1], bval[INV_MAX_T + 1];
	for (int j = 0; j <= pl.J; j++) {
		int inner = j > 0 && j < pl.J;
		double edge = j == 0 ? ldexp(1.0, kmin) : ldexp(1.0, kmax);
		fval[j] = inner ? nl_enc(1 / (half * pl.L[j - 1]), E) : 0;
		bval[j] = inner ? nl_enc(-mid / half, P) : 0;
		hval[j] = nl_enc(inner ? inv_g(rsqrt, pl.L[j - 1]) : inv_g(rsqrt, edge) / b[0], Gh);
	}
	cdm_shr bits[INV_MAX_T], f = {0}, w = {0}, hh = {0}, ww = {0}, sw = {0};
	cdm_shr B = {0}, acc = {0}, hp = {0}, pb = {0};
	if ((rc = nl_new(bits, pl.J, rows, err)) < 0)
		return rc;
	rc = nl_cmp_consts(m, bits, x, pl.t, pl.J, pre, err);
	if (rc == 0)
		rc = nl_new(&f, 1, rows, err);
	if (rc == 0) { /* W round */
		inv_lincomb(m, &f, bits, pl.J, fval);
		rc = cdm_mpc_dot_trunc(m, &w, x, &f, 1, NULL, S, err);
	}
	if (rc == 0)
		rc = nl_new(&hh, 1, 2 * rows, err);
	if (rc == 0)
		rc = nl_new(&ww, 1, 2 * rows, err);
	if (rc == 0) { /* A round: [w ; h] * [w ; w] */
		inv_lincomb(m, &f, bits, pl.J, bval); /* -mid/half on the inner buckets */
		cdm_mpc_add(m, &w, &w, &f);
		cdm_shr h = nl_view(&hh, rows, rows);
		inv_lincomb(m, &h, bits, pl.J, hval);
		memcpy(hh.a, w.a, rows * 8), memcpy(hh.b, w.b, rows * 8);
		memcpy(ww.a, w.a, rows * 8), memcpy(ww.b, w.b, rows * 8);
		memcpy(ww.a + rows, w.a, rows * 8), memcpy(ww.b + rows, w.b, rows * 8);
		rc = nl_mul_shift(m, &sw, &hh, &ww, P, err);
	}
	if (rc == 0)
		rc = nl_new(&B, 1, rows, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, rows, err);
	if (rc == 0) { /* B round: hp = hw (b2 w + b3 s) + b0 h + b1 hw */
		cdm_shr s2 = nl_view(&sw, 0, rows), hw = nl_view(&sw, rows, rows);
		cdm_shr h = nl_view(&hh, rows, rows);
		nl_axpy(m, &B, &w, nl_enc(b[2], Ec), 0);
		nl_axpy(m, &B, &s2, nl_enc(b[3], Ec), 1);
		nl_axpy(m, &acc, &h, nl_enc(b[0], P + Ec), 0);
		nl_axpy(m, &acc, &hw, nl_enc(b[1], P + Ec), 1);
		rc = cdm_mpc_dot_trunc(m, &hp, &hw, &B, 1, &acc, P + Ec, err);
	}
	if (rc == 0)
		rc = nl_new(&pb, 1, n, err);
	if (rc == 0) { /* C round: out = y * hp */
		nl_bcast_rows(&pb, &hp, rows, cols);
		rc = cdm_mpc_dot_trunc(m, out, y, &pb, 1, NULL, shC, err);
	}
	nl_free(bits, pl.J);
	cdm_shr_free(&f), cdm_shr_free(&w), cdm_shr_free(&hh), cdm_shr_free(&ww);
	cdm_shr_free(&sw), cdm_shr_free(&B), cdm_shr_free(&acc), cdm_shr_free(&hp);
	cdm_shr_free(&pb);
	return rc;
}
