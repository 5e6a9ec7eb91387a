/*
 * nonlin: the public entry points -- suite names, argument checks, the
 * per-suite dispatch, and the row functions (softmax, normalisation).
 */
#include <math.h>
#include <string.h>

#include "nl_impl.h"

static const char *const suite_names[] = {"cdm", "spu", "cipherdm"};
static const char *const op_names[CDM_NL_NOPS] = {
	"exp", "reciprocal", "rsqrt", "sigmoid", "tanh", "silu", "gelu", "mish", "softplus"};

int cdm_suite_parse(const char *name)
{
	for (int i = 0; name && i < 3; i++)
		if (strcmp(name, suite_names[i]) == 0)
			return i;
	return -1;
}

const char *cdm_suite_name(enum cdm_suite s)
{
	return (unsigned)s < 3 ? suite_names[s] : "?";
}

const char *cdm_nl_op_name(enum cdm_nl_op op)
{
	return (unsigned)op < CDM_NL_NOPS ? op_names[op] : "?";
}

/* out: zeroed (allocate) or exactly n elements. */
static int out_ready(cdm_shr *out, size_t n, const char *what, struct cdm_err *err)
{
	if (!out->a && !out->b && out->n == 0)
		return cdm_shr_new(out, n, err);
	if (out->n != n || !out->a || !out->b)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: output holds %zu elements, expected %zu",
				what, out->n, n);
	return 0;
}

static int check_suite(enum cdm_suite s, const char *what, struct cdm_err *err)
{
	if ((unsigned)s > CDM_SUITE_CIPHERDM)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: unknown protocol suite %d", what, (int)s);
	return 0;
}

int cdm_nl_apply(cdm_mpc *m, enum cdm_suite s, enum cdm_nl_op op, cdm_shr *out,
		 const cdm_shr *x, struct cdm_err *err)
{
	if ((unsigned)op >= CDM_NL_NOPS)
		return cdm_fail(err, CDM_EINPUT, "nonlin: unknown function %d", (int)op);
	const char *what = op_names[op];
	CDM_TRY(check_suite(s, what, err));
	if (!x || (x->n && (!x->a || !x->b)))
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: input is not a sharing", what);
	if (out == x)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: output aliases the input", what);
	CDM_TRY(out_ready(out, x->n, what, err));
	if (x->n == 0)
		return 0;
	int rc;
	switch (s) {
	case CDM_SUITE_SPU: rc = nl_spu_op(m, op, out, x, err); break;
	case CDM_SUITE_CIPHERDM: rc = nl_cipherdm_op(m, op, out, x, err); break;
	default: rc = nl_cdm_op(m, op, out, x, err); break;
	}
	if (rc < 0 && err && rc != CDM_ENET && rc != CDM_EPROTO)
		cdm_err_prefix(err, "nonlin %s (%s): ", what, suite_names[s]);
	return rc;
}

#define NL_WRAP(fn, op)                                                                  \
	int cdm_nl_##fn(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,     \
			struct cdm_err *err)                                              \
	{                                                                                 \
		return cdm_nl_apply(m, s, op, out, x, err);                               \
	}
NL_WRAP(exp, CDM_NL_EXP)
NL_WRAP(reciprocal, CDM_NL_RECIPROCAL)
NL_WRAP(rsqrt, CDM_NL_RSQRT)
NL_WRAP(sigmoid, CDM_NL_SIGMOID)
NL_WRAP(tanh, CDM_NL_TANH)
NL_WRAP(silu, CDM_NL_SILU)
NL_WRAP(gelu, CDM_NL_GELU)
NL_WRAP(mish, CDM_NL_MISH)
NL_WRAP(softplus, CDM_NL_SOFTPLUS)

static int check_rows(const cdm_shr *x, cdm_shr *out, size_t rows, size_t cols,
		      const char *what, struct cdm_err *err)
{
	size_t n;
	if (!x || (x->n && (!x->a || !x->b)))
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: input is not a sharing", what);
	if (rows == 0 || cols == 0 || cdm_mul_size(rows, cols, &n) < 0 || n != x->n)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: %zu x %zu does not match %zu elements",
				what, rows, cols, x->n);
	if (cols > 16384)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: rows of %zu elements (at most 16384)",
				what, cols);
	if (out == x)
		return cdm_fail(err, CDM_EINPUT, "nonlin %s: output aliases the input", what);
	return out_ready(out, n, what, err);
}

int cdm_nl_softmax_rows(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			size_t rows, size_t cols, struct cdm_err *err)
{
	return cdm_nl_softmax_rows_frac(m, s, out, x, rows, cols, cdm_mpc_frac(m), err);
}

int cdm_nl_softmax_rows_frac(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			     size_t rows, size_t cols, int frac_out, struct cdm_err *err)
{
	int F = cdm_mpc_frac(m), Fi = F + 8, rc, klog = 0;
	CDM_TRY(check_suite(s, "softmax", err));
	if (frac_out < F || frac_out > F + 8)
		return cdm_fail(err, CDM_EINPUT, "nonlin softmax: %d output fraction bits (%d..%d)",
				frac_out, F, F + 8);
	CDM_TRY(check_rows(x, out, rows, cols, "softmax", err));
	size_t n = x->n;
	while (((size_t)1 << klog) < cols)
		klog++;
	cdm_shr mx = {0}, mb = {0}, d = {0}, e = {0}, sum = {0}, r = {0}, rb = {0};
	rc = cdm_mpc_max_rows(m, &mx, x, rows, cols, err);
	if (rc == 0)
		rc = nl_new(&mb, 1, n, err);
	if (rc == 0)
		rc = nl_new(&d, 1, n, err);
	if (rc == 0) {
		nl_bcast_rows(&mb, &mx, rows, cols);
		cdm_mpc_sub(m, &d, x, &mb);
		rc = nl_new(&sum, 1, rows, err);
	}
	if (rc == 0) {
		if (s == CDM_SUITE_CDM) {
			/* exp and the row sums at Fi bits (sum >= exp(0) = 1), then
			 * e * (1/sum) straight to frac_out bits (inv.c); |e/sum| <= 1. */
			rc = nl_cdm_exp(m, &e, &d, Fi, 0, err);
			if (rc == 0) {
				nl_sum_rows(&sum, &e, rows, cols);
				rc = nl_inv_mul(m, out, &sum, Fi, 0, klog + 1, 0, &e, Fi, 1, frac_out,
						err);
			}
			goto done;
		} else {
			rc = s == CDM_SUITE_SPU ? nl_spu_exp(m, &e, &d, err) : nl_chexp(m, &e, &d, err);
			if (rc == 0) {
				nl_sum_rows(&sum, &e, rows, cols);
				rc = nl_spu_recip(m, &r, &sum, err);
			}
		}
	}
	if (rc == 0)
		rc = nl_new(&rb, 1, n, err);
	if (rc == 0) {
		nl_bcast_rows(&rb, &r, rows, cols);
		rc = nl_mul_shift(m, out, &e, &rb, F, err);
	}
	if (rc == 0 && frac_out > F) /* the baselines compute at F: exact rescale */
		nl_shl(m, out, out, frac_out - F);
done:
	if (rc < 0 && err && rc != CDM_ENET && rc != CDM_EPROTO)
		cdm_err_prefix(err, "nonlin softmax (%s): ", suite_names[s]);
	cdm_shr_free(&mx), cdm_shr_free(&mb), cdm_shr_free(&d), cdm_shr_free(&e);
	cdm_shr_free(&sum), cdm_shr_free(&r), cdm_shr_free(&rb);
	return rc;
}

/* Row means: (row sum * 2^(F+8)/cols) >> (F+8) -- 8 extra bits keep 1/cols
 * precise for long rows; |mean| < 2^14 keeps the product below 2^62. */
static int row_mean(cdm_mpc *m, cdm_shr *mean, const cdm_shr *x, size_t rows, size_t cols,
		    struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	cdm_shr s = {0};
	int rc = nl_new(&s, 1, rows, err);
	if (rc == 0) {
		nl_sum_rows(&s, x, rows, cols);
		cdm_mpc_mul_int(m, &s, &s, nl_enc(1.0 / (double)cols, F + 8));
		rc = cdm_mpc_trunc(m, mean, &s, F + 8, err);
	}
	cdm_shr_free(&s);
	return rc;
}

/* Per-element affine operand: NULL or exactly n elements. */
static int check_affine(const cdm_shr *v, size_t n, const char *what, struct cdm_err *err)
{
	if (v && (v->n != n || (n && (!v->a || !v->b))))
		return cdm_fail(err, CDM_EINPUT, "nonlin norm: %s holds %zu elements, not %zu", what,
				v->n, n);
	return 0;
}

int cdm_nl_norm_rows(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
		     size_t rows, size_t cols, double eps, struct cdm_err *err)
{
	return cdm_nl_norm_rows_affine(m, s, out, x, rows, cols, eps, NULL, NULL, err);
}

int cdm_nl_norm_rows_affine(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
			    size_t rows, size_t cols, double eps, const cdm_shr *gamma,
			    const cdm_shr *beta, struct cdm_err *err)
{
	CDM_TRY(check_suite(s, "norm", err));
	if (!(eps > 0) || eps > 1e3)
		return cdm_fail(err, CDM_EINPUT, "nonlin norm: eps %g outside (0, 1e3]", eps);
	CDM_TRY(check_rows(x, out, rows, cols, "norm", err));
	CDM_TRY(check_affine(gamma, x->n, "gamma", err));
	CDM_TRY(check_affine(beta, x->n, "beta", err));
	int F = cdm_mpc_frac(m), rc;
	size_t n = x->n;
	cdm_shr mean = {0}, mb = {0}, d = {0}, sq = {0}, var = {0}, rs = {0}, rb = {0};
	cdm_shr dd = {0}, dg = {0};
	rc = row_mean(m, &mean, x, rows, cols, err);
	if (rc == 0)
		rc = nl_new(&mb, 1, n, err);
	if (rc == 0)
		rc = nl_new(&d, 1, n, err);
	if (rc == 0) {
		nl_bcast_rows(&mb, &mean, rows, cols);
		cdm_mpc_sub(m, &d, x, &mb);
		/* squares truncated before they are summed (no overflow of the
		 * row sum for long rows); d * gamma rides in the same round */
		if (gamma) {
			rc = nl_new(&dd, 1, 2 * n, err);
			if (rc == 0)
				rc = nl_new(&dg, 1, 2 * n, err);
			if (rc == 0) {
				memcpy(dd.a, d.a, n * 8), memcpy(dd.b, d.b, n * 8);
				memcpy(dd.a + n, d.a, n * 8), memcpy(dd.b + n, d.b, n * 8);
				memcpy(dg.a, d.a, n * 8), memcpy(dg.b, d.b, n * 8);
				memcpy(dg.a + n, gamma->a, n * 8), memcpy(dg.b + n, gamma->b, n * 8);
				rc = cdm_mpc_mul_trunc(m, &sq, &dd, &dg, err);
			}
			if (rc == 0) /* d <- d * gamma; the squares stay in sq[0, n) */
				memcpy(d.a, sq.a + n, n * 8), memcpy(d.b, sq.b + n, n * 8);
		} else {
			rc = cdm_mpc_mul_trunc(m, &sq, &d, &d, err);
		}
	}
	if (rc == 0) {
		cdm_shr sqv = nl_view(&sq, 0, n);
		rc = row_mean(m, &var, &sqv, rows, cols, err);
	}
	if (rc == 0) {
		cdm_mpc_add_const(m, &var, &var, nl_enc(eps, F));
		/* The result's magnitude |d g / sqrt(var + eps)| <= sqrt(cols) |g|
		 * (|d_i| <= sqrt(cols var) in every row) bounds the last product:
		 * 2^10 covers cols <= 2^14 without gamma; with gamma inv.c's
		 * scales leave 2^(36-F) (two bits of margin below its limit). */
		int ybits = gamma ? 36 - F : 10;
		if (s == CDM_SUITE_CDM)
			rc = nl_inv_mul(m, out, &var, F, -18, 14, 1, &d, F, ybits, F, err);
		else
			rc = nl_spu_rsqrt(m, &rs, &var, err);
	}
	if (rc == 0 && s != CDM_SUITE_CDM) {
		rc = nl_new(&rb, 1, n, err);
		if (rc == 0) {
			nl_bcast_rows(&rb, &rs, rows, cols);
			rc = cdm_mpc_mul_trunc(m, out, &d, &rb, err);
		}
	}
	if (rc == 0 && beta)
		cdm_mpc_add(m, out, out, beta);
	if (rc < 0 && err && rc != CDM_ENET && rc != CDM_EPROTO)
		cdm_err_prefix(err, "nonlin norm (%s): ", suite_names[s]);
	cdm_shr_free(&mean), cdm_shr_free(&mb), cdm_shr_free(&d), cdm_shr_free(&sq);
	cdm_shr_free(&var), cdm_shr_free(&rs), cdm_shr_free(&rb);
	cdm_shr_free(&dd), cdm_shr_free(&dg);
	return rc;
}
