/*
 * nn/secure_sd: causal attention, causal softmax, quick_gelu and reshape on
 * replicated shares (see secure_sd.h). Every local step does the same thing
 * to both components, so the replicated layout is kept; only products,
 * truncations, comparisons and the nonlinear functions talk to the peers.
 */
#include "secure_sd.h"

#include <string.h>

#include "../ring/ring.h"

/* out is zeroed (allocate n) or holds exactly n elements. */
static int out_ready(cdm_shr *out, size_t n, const char *what, struct cdm_err *err)
{
	if (!out->a && !out->b && out->n == 0)
		return cdm_shr_new(out, n, err);
	if (out->n != n || !out->a || !out->b)
		return cdm_fail(err, CDM_EINTERNAL, "secure %s: output holds %zu elements, expected %zu",
				what, out->n, n);
	return 0;
}

/* ---- causal softmax ------------------------------------------------------- */

/* Packed index of the first valid entry of row i: rows 0..i-1 hold
 * 1 + 2 + ... + i entries. */
static size_t tri(size_t i)
{
	return i * (i + 1) / 2;
}

/* y = x with every masked entry (j > i) replaced by the diagonal x[i][i],
 * so that the row maximum is the maximum over the valid keys. */
static void diag_fill(cdm_shr *y, const cdm_shr *x, size_t mats, size_t N)
{
	for (size_t r = 0; r < mats * N; r++) {
		size_t i = r % N, row = r * N;
		for (size_t j = 0; j < N; j++) {
			size_t src = row + (j <= i ? j : i);
			y->a[row + j] = x->a[src];
			y->b[row + j] = x->b[src];
		}
	}
}

/* d[packed] = x[i][j] - mx[row] for the valid entries only. */
static void pack_shifted(cdm_shr *d, const cdm_shr *x, const cdm_shr *mx, size_t mats, size_t N)
{
	size_t per = tri(N);
	for (size_t r = 0; r < mats * N; r++) {
		size_t mat = r / N, i = r % N, dst = mat * per + tri(i);
		for (size_t j = 0; j <= i; j++) {
			d->a[dst + j] = x->a[r * N + j] - mx->a[r];
			d->b[dst + j] = x->b[r * N + j] - mx->b[r];
		}
	}
}

/* sum[row] = sum of the packed entries of the row (local). */
static void row_sums(cdm_shr *sum, const cdm_shr *e, size_t mats, size_t N)
{
	size_t per = tri(N);
	for (size_t r = 0; r < mats * N; r++) {
		size_t i = r % N, src = (r / N) * per + tri(i);
		uint64_t sa = 0, sb = 0;
		for (size_t j = 0; j <= i; j++) {
			sa += e->a[src + j];
			sb += e->b[src + j];
		}
		sum->a[r] = sa;
		sum->b[r] = sb;
	}
}

/* rb[packed] = r[row]: the row's reciprocal next to each valid entry. */
static void row_expand(cdm_shr *rb, const cdm_shr *r, size_t mats, size_t N)
{
	size_t per = tri(N);
	for (size_t row = 0; row < mats * N; row++) {
		size_t i = row % N, dst = (row / N) * per + tri(i);
		for (size_t j = 0; j <= i; j++) {
			rb->a[dst + j] = r->a[row];
			rb->b[dst + j] = r->b[row];
		}
	}
}

/* out[i][j] = p[packed] for j <= i, exactly 0 (both components) above. */
static void unpack(cdm_shr *out, const cdm_shr *p, size_t mats, size_t N)
{
	size_t per = tri(N);
	memset(out->a, 0, out->n * sizeof *out->a);
	memset(out->b, 0, out->n * sizeof *out->b);
	for (size_t r = 0; r < mats * N; r++) {
		size_t i = r % N, src = (r / N) * per + tri(i);
		memcpy(out->a + r * N, p->a + src, (i + 1) * sizeof *p->a);
		memcpy(out->b + r * N, p->b + src, (i + 1) * sizeof *p->b);
	}
}

int cdm_nn_secure_sd_softmax_causal(cdm_mpc *m, enum cdm_suite s, cdm_shr *out,
				    const cdm_shr *x, size_t mats, size_t N, struct cdm_err *err)
{
	if (N == 0 || mats == 0 || x->n != mats * N * N)
		return cdm_fail(err, CDM_EINTERNAL, "secure causal softmax: %zu elements for %zu "
				"matrices of %zu x %zu", x->n, mats, N, N);
	CDM_TRY(out_ready(out, x->n, "causal softmax", err));
	size_t rows = mats * N, P = mats * tri(N);
	cdm_shr y = {0}, mx = {0}, d = {0}, e = {0}, sum = {0}, r = {0}, rb = {0}, p = {0};
	int rc = cdm_shr_new(&y, x->n, err);
	if (rc == 0) {
		diag_fill(&y, x, mats, N);
		rc = cdm_mpc_max_rows(m, &mx, &y, rows, N, err);
	}
	cdm_shr_free(&y); /* the largest buffer: gone before the exp */
	if (rc == 0 && (rc = cdm_shr_new(&d, P, err)) == 0) {
		pack_shifted(&d, x, &mx, mats, N);
		/* d <= 0 exactly (the max is exact), inside every suite's exp domain
		 * as far as the real logits allow */
		rc = cdm_nl_exp(m, s, &e, &d, err);
	}
	if (rc == 0 && (rc = cdm_shr_new(&sum, rows, err)) == 0) {
		row_sums(&sum, &e, mats, N);
		/* each sum >= exp(0) = 1 (the max entry), <= N */
		rc = cdm_nl_reciprocal(m, s, &r, &sum, err);
	}
	if (rc == 0 && (rc = cdm_shr_new(&rb, P, err)) == 0) {
		row_expand(&rb, &r, mats, N);
		rc = cdm_mpc_mul_trunc(m, &p, &e, &rb, err);
	}
	if (rc == 0)
		unpack(out, &p, mats, N);
	cdm_shr_free(&mx), cdm_shr_free(&d), cdm_shr_free(&e), cdm_shr_free(&sum);
	cdm_shr_free(&r), cdm_shr_free(&rb), cdm_shr_free(&p);
	return rc;
}

/* ---- causal attention ------------------------------------------------------ */

/* Token layout [B][N][H*dh] <-> head layout [B*H][N][dh] (or [B*H][dh][N]
 * when transposed); to_heads 0 is the inverse (transposed not allowed). */
static void split_heads(uint64_t *dst, const uint64_t *src, size_t B, size_t N, size_t H,
			size_t dh, int to_heads, int transposed)
{
	for (size_t b = 0; b < B; b++)
		for (size_t n = 0; n < N; n++)
			for (size_t h = 0; h < H; h++)
				for (size_t d = 0; d < dh; d++) {
					size_t t = (b * N + n) * H * dh + h * dh + d;
					size_t u = transposed ? ((b * H + h) * dh + d) * N + n
							      : ((b * H + h) * N + n) * dh + d;
					if (to_heads)
						dst[u] = src[t];
					else
						dst[t] = src[u];
				}
}

static int heads_of(cdm_shr *dst, const cdm_shr *src, size_t B, size_t N, size_t H, size_t dh,
		    int transposed, struct cdm_err *err)
{
	CDM_TRY(cdm_shr_new(dst, src->n, err));
	split_heads(dst->a, src->a, B, N, H, dh, 1, transposed);
	split_heads(dst->b, src->b, B, N, H, dh, 1, transposed);
	return 0;
}

int cdm_nn_secure_sd_attention_causal(cdm_mpc *m, enum cdm_suite s, cdm_shr *out,
				      const cdm_shr *q, const cdm_shr *k, const cdm_shr *v,
				      size_t B, size_t N, size_t H, size_t dh, double scale,
				      struct cdm_err *err)
{
	size_t n = B * N * H * dh, BH = B * H;
	if (!n || q->n != n || k->n != n || v->n != n || out->n != n)
		return cdm_fail(err, CDM_EINTERNAL, "secure causal attention: operands of %zu, %zu, "
				"%zu, %zu elements for [%zu,%zu,%zu]", q->n, k->n, v->n, out->n, B,
				N, H * dh);
	int F = cdm_mpc_frac(m), rc;
	cdm_shr qs = {0}, qh = {0}, kt = {0}, vh = {0}, sc = {0}, p = {0}, o = {0};
	cdm_mpc_set_label(m, "attention_matmul");
	/* the public scale on Q: N*I elements, never more than the N*N scores */
	if ((rc = cdm_shr_new(&qs, n, err)) < 0)
		goto done;
	cdm_mpc_mul_int(m, &qs, q, cdm_fxp_from_double(scale, F));
	if ((rc = cdm_mpc_trunc(m, &qs, &qs, F, err)) < 0 ||
	    (rc = heads_of(&qh, &qs, B, N, H, dh, 0, err)) < 0 ||
	    (rc = heads_of(&kt, k, B, N, H, dh, 1, err)) < 0 ||
	    (rc = heads_of(&vh, v, B, N, H, dh, 0, err)) < 0 ||
	    (rc = cdm_mpc_matmul(m, &sc, &qh, &kt, BH, N, dh, N, F, err)) < 0)
		goto done;
	cdm_mpc_set_label(m, "softmax");
	if ((rc = cdm_nn_secure_sd_softmax_causal(m, s, &p, &sc, BH, N, err)) < 0)
		goto done;
	cdm_mpc_set_label(m, "attention_matmul");
	if ((rc = cdm_mpc_matmul(m, &o, &p, &vh, BH, N, N, dh, F, err)) < 0)
		goto done;
	split_heads(out->a, o.a, B, N, H, dh, 0, 0);
	split_heads(out->b, o.b, B, N, H, dh, 0, 0);
done:
	cdm_shr_free(&qs), cdm_shr_free(&qh), cdm_shr_free(&kt), cdm_shr_free(&vh);
	cdm_shr_free(&sc), cdm_shr_free(&p), cdm_shr_free(&o);
	return rc;
}

/* ---- quick_gelu and reshape -------------------------------------------------- */

int cdm_nn_secure_sd_quick_gelu(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
				struct cdm_err *err)
{
	int F = cdm_mpc_frac(m);
	CDM_TRY(out_ready(out, x->n, "quick_gelu", err));
	cdm_shr t = {0}, sg = {0};
	int rc = cdm_shr_new(&t, x->n, err);
	if (rc == 0) {
		/* 1.702 x: a public product, one truncation */
		cdm_mpc_mul_int(m, &t, x, cdm_fxp_from_double(1.702, F));
		rc = cdm_mpc_trunc(m, &t, &t, F, err);
	}
	if (rc == 0)
		rc = cdm_nl_sigmoid(m, s, &sg, &t, err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, out, x, &sg, err);
	cdm_shr_free(&t);
	cdm_shr_free(&sg);
	return rc;
}

int cdm_nn_secure_sd_reshape(cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	if (out->n != x->n || !out->a || !out->b)
		return cdm_fail(err, CDM_EINTERNAL, "secure reshape: %zu elements into %zu", x->n,
				out->n);
	memcpy(out->a, x->a, x->n * sizeof *x->a);
	memcpy(out->b, x->b, x->n * sizeof *x->b);
	return 0;
}
