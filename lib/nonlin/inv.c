/*
 * nonlin, suite `cdm`: y * x^-1 and y * x^-1/2 for a positive x per row, in
 * 9 rounds (11 when x must first be shifted into the comparison range),
 * with one product on the y tensor; everything else is per row.
 *
 *  1. Buckets (5 rounds): one batched comparison of x against J encoded
 *     thresholds T_j ~ 2^(kmin + j/q), q per octave (INV_Q_*: the
 *     buckets are narrow, R = 2^(1/q)). In the SAME rounds (riding along
 *     the comparisons, cdm_mpc_ltz_dot_trunc) every inner bucket b gets
 *     its slope term Z_b = ((x - T_(b-1)) * beta_b) >> s, for every row:
 *     g is replaced on each bucket by its minimax line, so no product has
 *     to wait for the bucket bits. Rows outside bucket b make garbage in
 *     Z_b (the product may wrap); it is multiplied by an exact 0 below.
 *  2. Select (1 round): hp = sum_b onehot_b * 2^(e_b) Z_b + sum_b
 *     onehot_b c0_b, one dot product WITHOUT truncation (0/1 times a
 *     value is exact); the constants are a local lincomb of the bits.
 *  3. C round (3): out = y * hp, truncation fused.
 * Below T_0 (also x <= 0) hp = g(T_0) and at or above T_(J-1) hp =
 * g(T_(J-1)): the result clamps to g(2^kmin) and g(2^kmax).
 *
 * Scales: hp at Gh bits, the smallest g kept to >= 2^15 units. Every
 * bucket's slope term is made with its own exponent z_b = s - e_b so the
 * product stays below 2^60 whatever the size of x (x^-1/2 spans 16
 * octaves over [2^-18, 2^14)), then brought to Gh bits by the exact local
 * factor 2^(e_b); its truncation error is 2^(e_b) units, relative <= 1e-7.
 * The line's error: (R - 1)^2 g''/16 relative, 9e-5 for x^-1/2 and 2.4e-4
 * for 1/x at q = 16 (plus the 2^-15 quantisation of hp).
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"

#define INV_Q_RSQRT 16 /* buckets per octave */
#define INV_Q_RECIP 16
#define INV_S 40       /* shift of the riding slope products */

/* One call's per-bucket constants (J thresholds, buckets 0..J). */
struct inv_plan {
	int J, s;
	double *t;      /* [J] thresholds as passed to nl_cmp_consts */
	uint64_t *T;    /* [J] thresholds at frac_in bits (integers) */
	uint64_t *c0;   /* [J+1] constant of each bucket's line, Gh bits */
	uint64_t *beta; /* [J+1] slope at Gh + z_b bits per unit of x */
	int *e;         /* [J+1] exponent bringing the slope term to Gh */
};

static double inv_g(int rsqrt, double v) { return rsqrt ? 1 / sqrt(v) : 1 / v; }

static void inv_plan_free(struct inv_plan *pl)
{
	cdm_free(pl->t), cdm_free(pl->T), cdm_free(pl->c0), cdm_free(pl->beta), cdm_free(pl->e);
}

/* The minimax line of the convex g on [a, c] (x in units of 2^-fi):
 * slope *mo per unit, value *vo at point p. */
static void inv_line(int rsqrt, int fi, double a, double c, double p, double *mo, double *vo)
{
	double ga = inv_g(rsqrt, ldexp(a, -fi)), gc = inv_g(rsqrt, ldexp(c, -fi));
	if (c <= a) {
		*mo = 0, *vo = ga;
		return;
	}
	double m = (gc - ga) / (c - a), pw = rsqrt ? 0.5 : 1.0;
	/* tangent point: g'(u) = m with g(u) = K u^-pw, K = 2^(fi pw) */
	double K = pow(2.0, fi * pw), u = pow(-m / (pw * K), -1 / (pw + 1));
	if (!(u > a && u < c))
		u = (a + c) / 2;
	double off = (ga + m * (u - a) - K * pow(u, -pw)) / 2; /* >= 0: secant above g */
	*mo = m, *vo = ga + m * (p - a) - off;
}

static int inv_plan_build(struct inv_plan *pl, int rsqrt, int frac_in, int pre, int kmin,
			  int kmax, int F, int Gh, struct cdm_err *err)
{
	int q = rsqrt ? INV_Q_RSQRT : INV_Q_RECIP, J = q * (kmax - kmin) + 1;
	memset(pl, 0, sizeof *pl);
	pl->J = J, pl->s = INV_S;
	pl->t = cdm_alloc((size_t)J, sizeof *pl->t, err);
	pl->T = pl->t ? cdm_alloc((size_t)J, 8, err) : NULL;
	pl->c0 = pl->T ? cdm_alloc((size_t)J + 1, 8, err) : NULL;
	pl->beta = pl->c0 ? cdm_alloc((size_t)J + 1, 8, err) : NULL;
	pl->e = pl->beta ? cdm_alloc((size_t)J + 1, sizeof *pl->e, err) : NULL;
	if (!pl->e) {
		inv_plan_free(pl);
		return CDM_ENOMEM;
	}
	for (int j = 0; j < J; j++) {
		/* with pre > 0 the comparison sees x >> pre: thresholds on that grid */
		double T = ldexp((double)llround(ldexp(pow(2.0, (double)j / q), kmin + frac_in - pre)),
				 pre);
		pl->T[j] = (uint64_t)T;
		pl->t[j] = ldexp(T, -F);
	}
	/* x >> pre is off by < 1 unit: a bucket's x may pass its edges by 2^pre */
	double slack = pre > 0 ? ldexp(2.0, pre) : 0;
	pl->c0[0] = nl_enc(inv_g(rsqrt, ldexp((double)pl->T[0], -frac_in)), Gh);
	pl->c0[J] = nl_enc(inv_g(rsqrt, ldexp((double)pl->T[J - 1], -frac_in)), Gh);
	pl->beta[0] = pl->beta[J] = 0, pl->e[0] = pl->e[J] = 0;
	for (int b = 1; b < J; b++) {
		double lo = (double)pl->T[b - 1], hi = (double)pl->T[b] - 1;
		double a = lo - slack > 1 ? lo - slack : 1, c = hi + slack, m, v;
		inv_line(rsqrt, frac_in, a, c, lo, &m, &v);
		pl->c0[b] = nl_enc(v, Gh);
		double dmax = fmax(c - lo, lo - a), big = fabs(m) * ldexp(dmax, Gh);
		int z = pl->s;
		if (big > 0 && 60 - (int)ceil(log2(big)) < z)
			z = 60 - (int)ceil(log2(big));
		pl->e[b] = pl->s - z;
		pl->beta[b] = nl_enc(m, Gh + z);
	}
	return 0;
}

/* Local: out = sum over buckets of onehot_b * val[b] (val[0..J], bottom
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

/* The riding operands: blocks b = 1..J-1 of (x - T_(b-1)) and beta_b. */
static int inv_ride_operands(cdm_mpc *m, const struct inv_plan *pl, const cdm_shr *x,
			     cdm_shr *px, cdm_shr *py, struct cdm_err *err)
{
	size_t rows = x->n, nb = (size_t)(pl->J - 1);
	uint64_t *pub = cdm_alloc(nb * rows, 8, err);
	if (!pub)
		return CDM_ENOMEM;
	int rc = nl_new_raw(px, nb * rows, err);
	if (rc == 0)
		rc = nl_new_raw(py, nb * rows, err);
	for (size_t b = 0; rc == 0 && b < nb; b++) {
		cdm_shr pb = nl_view(px, b * rows, rows);
		cdm_mpc_add_const(m, &pb, x, (uint64_t)0 - pl->T[b]);
		for (size_t r = 0; r < rows; r++)
			pub[b * rows + r] = pl->beta[b + 1];
	}
	if (rc == 0)
		cdm_mpc_public(m, pub, py);
	cdm_free(pub);
	return rc;
}

int nl_inv_mul(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int frac_in, int kmin, int kmax,
	       int rsqrt, const cdm_shr *y, int frac_y, int ybits, int frac_out,
	       struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), rc;
	size_t rows = x->n, n = y->n, cols = rows ? n / rows : 0;
	double hmin = inv_g(rsqrt, ldexp(1.0, kmax)), hmax = inv_g(rsqrt, ldexp(1.0, kmin));
	int Gh = 15 - (int)floor(log2(hmin)), shC = frac_y + Gh - frac_out;
	/* compare x itself when it and the thresholds fit the comparison
	 * range (2^(CDM_CMP_BITS-1) = 2^35 units), else x >> (frac_in - F) */
	int pre = kmax + frac_in <= 35 ? 0 : frac_in - F;
	if (rows == 0 || n % rows || frac_in < F || kmax <= kmin || shC < 1 ||
	    ybits + frac_y + Gh > 60 || ldexp(hmax, Gh) > 0x1p60)
		return cdm_fail(err, CDM_EINTERNAL,
				"nonlin inv: unsupported scales (in %d, y %d, out %d bits, 2^%d..2^%d)",
				frac_in, frac_y, frac_out, kmin, kmax);
	struct inv_plan pl;
	CDM_TRY(inv_plan_build(&pl, rsqrt, frac_in, pre, kmin, kmax, F, Gh, err));
	int J = pl.J;
	size_t nb = (size_t)(J - 1);
	cdm_shr *bits = cdm_alloc((size_t)J, sizeof *bits, err);
	cdm_shr px = {0}, py = {0}, Z = {0}, O = {0}, acc = {0}, hp = {0}, pb = {0};
	if (!bits) {
		inv_plan_free(&pl);
		return CDM_ENOMEM;
	}
	rc = nl_new(bits, J, rows, err);
	if (rc == 0)
		rc = inv_ride_operands(m, &pl, x, &px, &py, err);
	if (rc == 0) { /* comparisons, the slope products riding along */
		struct nl_ride ride = {&Z, &px, &py, pl.s};
		rc = nl_cmp_consts_ride(m, bits, x, pl.t, J, pre, &ride, err);
	}
	if (rc == 0)
		rc = nl_new_raw(&O, nb * rows, err);
	if (rc == 0)
		rc = nl_new(&acc, 1, rows, err);
	if (rc == 0) { /* select: hp = sum onehot_b 2^e_b Z_b + the constants */
		for (size_t b = 0; b < nb; b++) {
			cdm_shr ob = nl_view(&O, b * rows, rows), zb = nl_view(&Z, b * rows, rows);
			cdm_mpc_sub(m, &ob, &bits[b + 1], &bits[b]);
			if (pl.e[b + 1] > 0)
				nl_shl(m, &zb, &zb, pl.e[b + 1]);
		}
		inv_lincomb(m, &acc, bits, J, pl.c0);
		rc = cdm_mpc_dot_trunc(m, &hp, &O, &Z, nb, &acc, 0, err);
	}
	if (rc == 0)
		rc = nl_new(&pb, 1, n, err);
	if (rc == 0) { /* C round: out = y * hp */
		nl_bcast_rows(&pb, &hp, rows, cols);
		rc = cdm_mpc_dot_trunc(m, out, y, &pb, 1, NULL, shC, err);
	}
	nl_free(bits, J);
	cdm_free(bits);
	inv_plan_free(&pl);
	cdm_shr_free(&px), cdm_shr_free(&py), cdm_shr_free(&Z), cdm_shr_free(&O);
	cdm_shr_free(&acc), cdm_shr_free(&hp), cdm_shr_free(&pb);
	return rc;
}
