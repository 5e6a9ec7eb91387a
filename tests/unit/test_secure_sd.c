/*
 * test_secure_sd: the Stable Diffusion ops of the secure backend
 * (lib/nn/secure_sd.c and the SD uses of secure.c) against the float32
 * backend, three parties in three threads over cdm_net_local; then the
 * secure forward of the tiny golden SD models (tests/golden_sd or
 * $CDM_GOLDEN_SD_DIR: UNet2DConditionModel, AutoencoderKL decode,
 * CLIPTextModel with secret token ids) against their PyTorch references.
 * Error measure: relative RMS ||y - ref||_2 / ||ref||_2 (and max abs per op).
 * Model bound: relative RMS <= 1e-2 (SPEC section 5's per-call bound).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/sd.h"
#include "check.h"
#include "mpc_harness.h"
#include "fmt/share.h"
#include "fmt/st.h"
#include "model/clip.h"
#include "model/sd_config.h"
#include "model/unet_cond.h"
#include "model/vae.h"
#include "nn/nn.h"
#include "nn/secure.h"
#include "nn/secure_sd.h"
#include "ring/ring.h"

static uint64_t rng;

/* ---- inputs ------------------------------------------------------------------ */

struct input {
	int ndim;
	int64_t dim[4];
	int integer;             /* integer values (one-hot ids), not fixed point */
	float *v;                /* plaintext [numel] */
	cdm_shr sh[CDM_PARTIES]; /* party i's components */
};

static size_t numel_of(int ndim, const int64_t *dim)
{
	size_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= (size_t)dim[i];
	return n;
}

/* Share in->v into three fresh random sharings. */
static void reshare(struct input *in)
{
	struct cdm_err err = {0};
	size_t n = numel_of(in->ndim, in->dim);
	for (int p = 0; p < CDM_PARTIES; p++) {
		cdm_shr_free(&in->sh[p]);
		cdm_shr_new(&in->sh[p], n, &err);
	}
	for (size_t k = 0; k < n; k++) {
		uint64_t x = in->integer ? (uint64_t)(int64_t)llroundf(in->v[k])
					 : cdm_fxp_from_double(in->v[k], CDM_FRAC_BITS_DEFAULT);
		uint64_t c[3] = {check_rand(&rng), check_rand(&rng), 0};
		c[2] = x - c[0] - c[1];
		for (int p = 0; p < CDM_PARTIES; p++) {
			in->sh[p].a[k] = c[p];
			in->sh[p].b[k] = c[(p + 1) % 3];
		}
	}
}

static void make_input(struct input *in, int ndim, const int64_t *dim, double lo, double hi)
{
	memset(in, 0, sizeof *in);
	in->ndim = ndim;
	memcpy(in->dim, dim, (size_t)ndim * sizeof *dim);
	size_t n = numel_of(ndim, dim);
	in->v = calloc(n, sizeof(float));
	for (size_t k = 0; k < n; k++)
		in->v[k] = (float)check_uniform(&rng, lo, hi);
	reshare(in);
}

/* Integer one-hot rows [R,K] of ids. */
static void make_onehot(struct input *in, const int64_t *ids, int64_t R, int64_t K)
{
	int64_t d[2] = {R, K};
	make_input(in, 2, d, 0, 0);
	in->integer = 1;
	for (int64_t r = 0; r < R; r++)
		in->v[r * K + ids[r]] = 1.0f;
	reshare(in);
}

static void free_input(struct input *in)
{
	free(in->v);
	for (int p = 0; p < CDM_PARTIES; p++)
		cdm_shr_free(&in->sh[p]);
}

/* The input as a tensor: plain backend (p < 0) or party p's secret share. */
static int to_tensor(cdm_nn *nn, int p, const struct input *in, cdm_tensor **out,
		     struct cdm_err *err)
{
	if (p < 0)
		return cdm_nn_public(nn, in->ndim, in->dim, in->v, out, err);
	cdm_shr s = {0};
	CDM_TRY(cdm_shr_copy(&s, &in->sh[p], err));
	int rc = cdm_nn_secure_wrap(nn, in->ndim, in->dim, &s, in->integer, out, err);
	cdm_shr_free(&s);
	return rc;
}

static void rel_err(const float *y, const float *ref, size_t n, double *rel, double *maxabs)
{
	double num = 0, den = 0;
	*maxabs = 0;
	for (size_t k = 0; k < n; k++) {
		double d = (double)y[k] - ref[k];
		num += d * d;
		den += (double)ref[k] * ref[k];
		if (isnan(d) || fabs(d) > *maxabs)
			*maxabs = isnan(d) ? INFINITY : fabs(d);
	}
	*rel = den > 0 ? sqrt(num / den) : sqrt(num);
	if (isnan(*rel))
		*rel = INFINITY;
}

/* ---- op cases ------------------------------------------------------------------ */

enum op { OP_LAYERNORM, OP_CAUSAL, OP_CROSS, OP_QUICK_GELU, OP_GEGLU, OP_RESHAPE, OP_EMBED };

struct opcase {
	const char *name;
	enum op op;
	struct input in[3];
	int nin, heads;
	double tol_rel, tol_abs;
	float *out[CDM_PARTIES];
	size_t nout;
	int rc[CDM_PARTIES];
	char msg[CDM_PARTIES][256];
};

/* GEGLU as unet_cond.c builds it: x [B,N,2C] -> a * GELU(g) [B,N,C]. */
static int geglu(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **res, struct cdm_err *err)
{
	cdm_tensor *img = NULL, *a = NULL, *g = NULL, *gg = NULL, *m = NULL;
	int64_t half = x->dim[2] / 2;
	int rc;
	if ((rc = cdm_nn_from_tokens(nn, x, x->dim[1], 1, &img, err)) == 0 &&
	    (rc = cdm_nn_slice(nn, img, 0, half, &a, err)) == 0 &&
	    (rc = cdm_nn_slice(nn, img, half, half, &g, err)) == 0 &&
	    (rc = cdm_nn_act(nn, g, CDM_ACT_GELU, &gg, err)) == 0 &&
	    (rc = cdm_nn_mul(nn, a, gg, &m, err)) == 0)
		rc = cdm_nn_to_tokens(nn, m, res, err);
	cdm_nn_free(nn, img), cdm_nn_free(nn, a), cdm_nn_free(nn, g);
	cdm_nn_free(nn, gg), cdm_nn_free(nn, m);
	return rc;
}

static int run_op(cdm_nn *nn, struct opcase *c, cdm_tensor **t, cdm_tensor **res,
		  struct cdm_err *err)
{
	double sc = t[0]->ndim == 3 ? 1.0 / sqrt((double)(t[0]->dim[2] / (c->heads ? c->heads : 1)))
				    : 1.0;
	switch (c->op) {
	case OP_LAYERNORM: return cdm_nn_layer_norm(nn, t[0], 1e-5, t[1], t[2], res, err);
	case OP_CAUSAL: return cdm_nn_attention_causal(nn, t[0], t[1], t[2], c->heads, sc, res, err);
	case OP_CROSS: return cdm_nn_attention(nn, t[0], t[1], t[2], c->heads, sc, res, err);
	case OP_QUICK_GELU: return cdm_nn_act(nn, t[0], CDM_ACT_QUICK_GELU, res, err);
	case OP_GEGLU: return geglu(nn, t[0], res, err);
	case OP_RESHAPE: {
		int64_t d[2] = {t[0]->dim[0] * t[0]->dim[1], t[0]->dim[2]};
		return cdm_nn_reshape(nn, t[0], 2, d, res, err);
	}
	case OP_EMBED: return cdm_nn_embed(nn, t[0], t[1], res, err);
	}
	return cdm_fail(err, CDM_EINTERNAL, "unknown op");
}

static struct opcase *cur_case;

static void party_op(cdm_mpc *m, void *arg)
{
	int p = cdm_mpc_id(m);
	struct opcase *c = cur_case;
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_tensor *t[3] = {0}, *res = NULL;
	(void)arg;
	int rc = cdm_nn_secure_new(&nn, m, CDM_SUITE_CDM, &err);
	for (int i = 0; rc == 0 && i < c->nin; i++)
		rc = to_tensor(nn, p, &c->in[i], &t[i], &err);
	if (rc == 0)
		rc = run_op(nn, c, t, &res, &err);
	if (rc == 0) {
		c->nout = (size_t)cdm_tensor_numel(res);
		c->out[p] = calloc(c->nout, sizeof(float));
		rc = cdm_nn_read(nn, res, c->out[p], &err);
	}
	c->rc[p] = rc;
	snprintf(c->msg[p], sizeof c->msg[p], "%s", err.msg);
	for (int i = 0; i < 3; i++)
		cdm_nn_free(nn, t[i]);
	cdm_nn_free(nn, res);
	cdm_nn_secure_free(nn);
}

/* Run c securely and on the plain backend; compare. Returns the plain
 * reference (caller frees with free()) for extra checks, or NULL. */
static float *check_case(struct opcase *c)
{
	struct cdm_err err = {0};
	cdm_nn *plain = NULL;
	cdm_tensor *t[3] = {0}, *ref = NULL;
	float *refv = NULL;
	cdm_nn_plain_new(&plain, &err);
	int prc = 0;
	for (int i = 0; prc == 0 && i < c->nin; i++)
		prc = to_tensor(plain, -1, &c->in[i], &t[i], &err);
	if (prc == 0)
		prc = run_op(plain, c, t, &ref, &err);
	CHECK(prc == 0, "%s: plain op failed: %s", c->name, err.msg);
	void *args[3] = {0};
	cur_case = c;
	int hrc = mpc_run3(party_op, args);
	CHECK(hrc == 0, "%s: harness failed", c->name);
	int ok = prc == 0 && hrc == 0;
	for (int p = 0; p < CDM_PARTIES; p++) {
		CHECK(c->rc[p] == 0, "%s: party %d: %s", c->name, p, c->msg[p]);
		ok &= c->rc[p] == 0;
	}
	if (ok) {
		size_t n = (size_t)cdm_tensor_numel(ref);
		double rel, mx;
		CHECK(c->nout == n, "%s: %zu outputs, expected %zu", c->name, c->nout, n);
		rel_err(c->out[0], cdm_nn_plain_data(ref), n, &rel, &mx);
		fprintf(stderr, "  %-26s n=%-6zu rel_rms=%.2e max_abs=%.2e %8llu B/party %3llu rounds\n",
			c->name, n, rel, mx, (unsigned long long)mpc_h_sent[0],
			(unsigned long long)mpc_h_rounds[0]);
		CHECK(rel <= c->tol_rel, "%s: rel RMS %.3g > %.3g", c->name, rel, c->tol_rel);
		CHECK(mx <= c->tol_abs, "%s: max abs %.3g > %.3g", c->name, mx, c->tol_abs);
		CHECK(!memcmp(c->out[0], c->out[1], n * 4) && !memcmp(c->out[0], c->out[2], n * 4),
		      "%s: parties revealed different values", c->name);
		refv = malloc(n * sizeof *refv);
		memcpy(refv, cdm_nn_plain_data(ref), n * sizeof *refv);
	}
	for (int i = 0; i < c->nin; i++)
		cdm_nn_free(plain, t[i]);
	cdm_nn_free(plain, ref);
	cdm_nn_plain_free(plain);
	return refv;
}

static void free_case(struct opcase *c)
{
	for (int p = 0; p < CDM_PARTIES; p++)
		free(c->out[p]), c->out[p] = NULL;
	for (int i = 0; i < c->nin; i++)
		free_input(&c->in[i]);
}

#define D(...) ((const int64_t[]){__VA_ARGS__})

static void op_case(const char *name, enum op op, int heads, double tol_rel, double tol_abs,
		    struct opcase *c)
{
	memset(c, 0, sizeof *c);
	c->name = name, c->op = op, c->heads = heads, c->tol_rel = tol_rel, c->tol_abs = tol_abs;
}

static void test_ops(void)
{
	struct opcase c;
	float *ref;

	/* LayerNorm over the last dim, CLIP-like values with an offset */
	op_case("layer_norm [2,5,48]", OP_LAYERNORM, 0, 3e-3, 2e-2, &c);
	make_input(&c.in[0], 3, D(2, 5, 48), -3, 5);
	make_input(&c.in[1], 1, D(48), 0.5, 1.5);
	make_input(&c.in[2], 1, D(48), -0.5, 0.5);
	c.nin = 3;
	free(check_case(&c));
	free_case(&c);

	/* causal self-attention, 2 heads */
	op_case("attention_causal [2,9,16]", OP_CAUSAL, 2, 5e-3, 1e-2, &c);
	for (int i = 0; i < 3; i++)
		make_input(&c.in[i], 3, D(2, 9, 16), -2, 2);
	c.nin = 3;
	free(check_case(&c));
	free_case(&c);

	/* Masked keys must get exactly zero weight even when their logits are
	 * the largest by far: future keys align with every query (score ~ +60)
	 * and carry huge values (v = 100). Query 0 may only see key 0. */
	op_case("attention_causal masked", OP_CAUSAL, 1, 5e-3, 2e-2, &c);
	for (int i = 0; i < 3; i++)
		make_input(&c.in[i], 3, D(1, 6, 4), -1, 1);
	for (int n = 0; n < 6; n++)
		for (int d = 0; d < 4; d++) {
			c.in[0].v[n * 4 + d] = 4.0f;            /* q */
			c.in[1].v[n * 4 + d] = n >= 3 ? 7.5f : (float)(n % 2) - 0.5f; /* k */
			c.in[2].v[n * 4 + d] = n >= 3 ? 100.0f : (float)(n + d) * 0.25f; /* v */
		}
	for (int i = 0; i < 3; i++)
		reshare(&c.in[i]);
	c.nin = 3;
	ref = check_case(&c);
	if (ref && c.out[0]) {
		/* rows 0..2 only see keys 0..2: their values are < 2 */
		int leak = 0;
		for (int n = 0; n < 3; n++)
			for (int d = 0; d < 4; d++)
				leak |= fabsf(c.out[0][n * 4 + d]) > 2.0f;
		CHECK(!leak, "causal attention: a masked key leaked into rows 0..2");
	}
	free(ref);
	free_case(&c);

	/* cross-attention: 7 queries against a 5-token context, 2 heads */
	op_case("cross-attention N=7 M=5", OP_CROSS, 2, 5e-3, 1e-2, &c);
	make_input(&c.in[0], 3, D(2, 7, 16), -2, 2);
	make_input(&c.in[1], 3, D(2, 5, 16), -2, 2);
	make_input(&c.in[2], 3, D(2, 5, 16), -2, 2);
	c.nin = 3;
	free(check_case(&c));
	free_case(&c);

	/* quick_gelu on [-8, 8] plus the edges of the sigmoid's range */
	/* sigmoid's abs error <= 6e-4 (nonlin.h) times |x| <= 8 */
	op_case("quick_gelu", OP_QUICK_GELU, 0, 2e-3, 5e-3, &c);
	make_input(&c.in[0], 1, D(2000), -8, 8);
	c.in[0].v[0] = 0, c.in[0].v[1] = -30, c.in[0].v[2] = 30, c.in[0].v[3] = -1000;
	c.in[0].v[4] = 1000;
	reshare(&c.in[0]);
	c.nin = 1;
	free(check_case(&c));
	free_case(&c);

	/* GEGLU: value half times exact GELU of the gate half */
	op_case("geglu [2,6,2x12]", OP_GEGLU, 0, 3e-3, 3e-3, &c);
	make_input(&c.in[0], 3, D(2, 6, 24), -4, 4);
	c.nin = 1;
	free(check_case(&c));
	free_case(&c);

	/* reshape: exact (a view) */
	op_case("reshape [2,3,5]->[6,5]", OP_RESHAPE, 0, 1e-6, 1e-6, &c);
	make_input(&c.in[0], 3, D(2, 3, 5), -100, 100);
	c.nin = 1;
	free(check_case(&c));
	free_case(&c);

	/* token embedding with secret ids: integer one-hot x fixed-point table,
	 * exact up to the table's encoding */
	op_case("embed secret ids [6,50]", OP_EMBED, 0, 1e-6, 1e-6, &c);
	int64_t ids[6] = {0, 49, 7, 7, 23, 1};
	make_onehot(&c.in[0], ids, 6, 50);
	make_input(&c.in[1], 2, D(50, 8), -1, 1);
	c.nin = 2;
	free(check_case(&c));
	free_case(&c);
}

/* Causal softmax directly: masked entries exactly 0 (not just tiny), valid
 * rows sum to 1. */
struct smx_job {
	const struct input *x;
	uint64_t *out[CDM_PARTIES];
	int rc[CDM_PARTIES];
	char msg[CDM_PARTIES][256];
};
static struct smx_job *cur_smx;

static void party_smx(cdm_mpc *m, void *arg)
{
	int p = cdm_mpc_id(m);
	struct smx_job *j = cur_smx;
	struct cdm_err err = {0};
	cdm_shr o = {0};
	(void)arg;
	size_t N = (size_t)j->x->dim[1], mats = (size_t)j->x->dim[0];
	int rc = cdm_nn_secure_sd_softmax_causal(m, CDM_SUITE_CDM, &o, &j->x->sh[p], mats, N, &err);
	if (rc == 0) {
		j->out[p] = calloc(o.n, 8);
		rc = cdm_mpc_reveal(m, &o, j->out[p], &err);
	}
	j->rc[p] = rc;
	snprintf(j->msg[p], sizeof j->msg[p], "%s", err.msg);
	cdm_shr_free(&o);
}

static void test_softmax_causal(void)
{
	struct input x;
	int64_t mats = 3, N = 11;
	make_input(&x, 3, D(mats, N, N), -6, 6);
	/* masked logits far above the valid ones: any leak would dominate */
	for (int64_t r = 0; r < mats * N; r++)
		for (int64_t jj = r % N + 1; jj < N; jj++)
			x.v[r * N + jj] = 3000.0f;
	reshare(&x);
	struct smx_job j;
	memset(&j, 0, sizeof j);
	j.x = &x;
	cur_smx = &j;
	void *args[3] = {0};
	CHECK(mpc_run3(party_smx, args) == 0, "causal softmax harness");
	int ok = 1;
	for (int p = 0; p < CDM_PARTIES; p++) {
		CHECK(j.rc[p] == 0, "causal softmax party %d: %s", p, j.msg[p]);
		ok &= j.rc[p] == 0;
	}
	if (ok) {
		int64_t nonzero = 0;
		double maxerr = 0;
		for (int64_t r = 0; r < mats * N; r++) {
			int64_t i = r % N;
			double mx = -1e30, s = 0;
			for (int64_t jj = 0; jj <= i; jj++)
				mx = fmax(mx, x.v[r * N + jj]);
			for (int64_t jj = 0; jj <= i; jj++)
				s += exp(x.v[r * N + jj] - mx);
			for (int64_t jj = 0; jj < N; jj++) {
				uint64_t v = j.out[0][r * N + jj];
				if (jj > i) {
					nonzero += v != 0;
					continue;
				}
				double want = exp(x.v[r * N + jj] - mx) / s;
				maxerr = fmax(maxerr, fabs(cdm_fxp_to_double(v, CDM_FRAC_BITS_DEFAULT) - want));
			}
		}
		fprintf(stderr, "  causal softmax %lldx%lldx%lld: masked entries not exactly 0: %lld, "
			"max abs err %.2e, %llu rounds\n", (long long)mats, (long long)N, (long long)N,
			(long long)nonzero, maxerr, (unsigned long long)mpc_h_rounds[0]);
		CHECK(nonzero == 0, "causal softmax: %lld masked weights are not exactly 0",
		      (long long)nonzero);
		CHECK(maxerr < 2e-3, "causal softmax: max abs err %.3g", maxerr);
	}
	for (int p = 0; p < CDM_PARTIES; p++)
		free(j.out[p]);
	free_input(&x);
}

/* ---- golden SD models ------------------------------------------------------------ */

/* Share every float tensor of `weights` into prefix.0..2 (model shares with
 * `config` as their config text). 0 or -1 (message printed). */
static int share_weights(const char *weights, const char *config, const char *prefix)
{
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	cdm_share_writer *w[3] = {0};
	char id[CDM_SHARE_ID_LEN + 1];
	int rc = cdm_st_open(&st, weights, &err);
	if (rc == 0)
		rc = cdm_share_new_id(id, &err);
	for (int p = 0; rc == 0 && p < 3; p++)
		if ((rc = cdm_share_writer_new(&w[p], p, CDM_FRAC_BITS_DEFAULT, id, "model", &err)) == 0)
			rc = cdm_share_writer_meta(w[p], "config", config, &err);
	for (size_t i = 0; rc == 0 && i < cdm_st_count(st); i++) {
		const struct cdm_st_tensor *t = cdm_st_at(st, i);
		size_t n = (size_t)t->numel;
		float *f = malloc((n ? n : 1) * sizeof *f);
		uint64_t *e = malloc((n ? n : 1) * 8), *c[3];
		for (int k = 0; k < 3; k++)
			c[k] = malloc((n ? n : 1) * 8);
		rc = cdm_st_to_f32(st, t, f, &err);
		if (rc == 0)
			rc = cdm_fxp_encode_f32(e, f, n, CDM_FRAC_BITS_DEFAULT, t->name, NULL, &err);
		for (size_t k = 0; rc == 0 && k < n; k++) {
			c[0][k] = check_rand(&rng), c[1][k] = check_rand(&rng);
			c[2][k] = e[k] - c[0][k] - c[1][k];
		}
		for (int p = 0; rc == 0 && p < 3; p++)
			rc = cdm_share_writer_add(w[p], t->name, t->ndim, t->shape, c[p], c[(p + 1) % 3],
						  &err);
		free(f), free(e), free(c[0]), free(c[1]), free(c[2]);
	}
	for (int p = 0; rc == 0 && p < 3; p++) {
		char path[512];
		snprintf(path, sizeof path, "%s.%d", prefix, p);
		rc = cdm_share_writer_save(w[p], path, 0, &err);
	}
	for (int p = 0; p < 3; p++)
		cdm_share_writer_free(w[p]);
	if (st)
		cdm_st_close(st);
	if (rc < 0)
		fprintf(stderr, "share %s: %s\n", weights, err.msg);
	return rc < 0 ? -1 : 0;
}

enum kind { K_UNET, K_VAE, K_CLIP };

struct model_job {
	enum kind kind;
	const char *prefix;        /* model share prefix */
	const char *config;        /* config.json text */
	const struct input *in[2]; /* unet: x, ctx; vae: z; clip: one-hot ids */
	double t[8];               /* unet timesteps */
	int64_t batch, len;        /* clip */
	float *out[CDM_PARTIES];
	size_t nout;
	int rc[CDM_PARTIES];
	char msg[CDM_PARTIES][256];
};
static struct model_job *cur_model;

static int model_fwd(struct model_job *j, cdm_nn *nn, int p, cdm_tensor **out,
		     struct cdm_err *err)
{
	size_t len = strlen(j->config);
	cdm_tensor *a = NULL, *b = NULL;
	int rc = to_tensor(nn, p, j->in[0], &a, err);
	if (rc == 0 && j->kind == K_UNET)
		rc = to_tensor(nn, p, j->in[1], &b, err);
	if (rc == 0 && j->kind == K_UNET) {
		struct cdm_unet_cond_config cfg;
		cdm_unet_cond *u = NULL;
		if ((rc = cdm_unet_cond_config_parse(&cfg, j->config, len, "config", err)) == 0 &&
		    (rc = cdm_unet_cond_new(&u, nn, &cfg, err)) == 0)
			rc = cdm_unet_cond_forward(u, a, j->t, b, out, err);
		cdm_unet_cond_free(u);
	} else if (rc == 0 && j->kind == K_VAE) {
		struct cdm_vae_config cfg;
		cdm_vae *v = NULL;
		if ((rc = cdm_vae_config_parse(&cfg, j->config, len, "config", err)) == 0 &&
		    (rc = cdm_vae_new(&v, nn, &cfg, err)) == 0)
			rc = cdm_vae_decode(v, a, out, err);
		cdm_vae_free(v);
	} else if (rc == 0) {
		struct cdm_clip_config cfg;
		cdm_clip *c = NULL;
		if ((rc = cdm_clip_config_parse(&cfg, j->config, len, "config", err)) == 0 &&
		    (rc = cdm_clip_new(&c, nn, &cfg, err)) == 0)
			rc = cdm_clip_forward(c, a, j->batch, j->len, out, err);
		cdm_clip_free(c);
	}
	cdm_nn_free(nn, a);
	cdm_nn_free(nn, b);
	return rc;
}

static void party_model(cdm_mpc *m, void *arg)
{
	struct model_job *j = cur_model;
	int p = cdm_mpc_id(m);
	struct cdm_err err = {0};
	char path[512];
	cdm_share *sh = NULL;
	cdm_nn *nn = NULL;
	cdm_tensor *out = NULL;
	(void)arg;
	snprintf(path, sizeof path, "%s.%d", j->prefix, p);
	int rc = cdm_share_open(&sh, path, "model", &err);
	if (rc == 0)
		rc = cdm_nn_secure_new(&nn, m, CDM_SUITE_CDM, &err);
	if (rc == 0)
		rc = cdm_nn_secure_bind(nn, sh, &err);
	if (rc == 0)
		rc = model_fwd(j, nn, p, &out, &err);
	if (rc == 0) {
		j->nout = (size_t)cdm_tensor_numel(out);
		j->out[p] = calloc(j->nout, sizeof(float));
		rc = cdm_nn_read(nn, out, j->out[p], &err);
	}
	j->rc[p] = rc;
	snprintf(j->msg[p], sizeof j->msg[p], "%s", err.msg);
	if (nn)
		cdm_nn_free(nn, out);
	cdm_nn_secure_free(nn);
	if (sh)
		cdm_share_close(sh);
}

/* A float tensor of io as an input (secret fixed point). */
static int io_input(const cdm_st *io, const char *name, struct input *in, float **ref)
{
	struct cdm_err err = {0};
	const struct cdm_st_tensor *t = cdm_st_find(io, name);
	if (in)
		memset(in, 0, sizeof *in);
	if (!t || t->ndim < 1 || t->ndim > 4)
		return -1;
	float *d = NULL;
	if (cdm_st_load_f32(io, name, t->ndim, t->shape, &d, &err) < 0)
		return -1;
	if (ref) {
		*ref = d;
		return 0;
	}
	in->ndim = t->ndim;
	memcpy(in->dim, t->shape, (size_t)t->ndim * sizeof *in->dim);
	in->v = malloc(t->numel * sizeof(float));
	memcpy(in->v, d, t->numel * sizeof(float));
	cdm_free(d);
	reshare(in);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

/* One golden case: share, run securely, compare with the torch reference. */
static void run_model(const char *dir, const char *name, enum kind kind)
{
	char path[4600], cfgp[4600], tmpl[] = "/tmp/cdm-secure-sd-XXXXXX", prefix[128];
	static const char *const wfile[] = {"diffusion_pytorch_model.safetensors",
					    "diffusion_pytorch_model.safetensors", "model.safetensors"};
	static const char *const what[] = {"UNet2DConditionModel", "AutoencoderKL.decode",
					   "CLIPTextModel (secret ids)"};
	struct cdm_err err = {0};
	cdm_st *io = NULL;
	struct input in[2];
	float *ref = NULL;
	struct model_job j;
	memset(in, 0, sizeof in);
	memset(&j, 0, sizeof j);
	snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
	char *config = slurp(cfgp);
	CHECK(config && mkdtemp(tmpl), "%s: config or temp dir", name);
	if (!config)
		return;
	snprintf(prefix, sizeof prefix, "%s/m", tmpl);
	snprintf(path, sizeof path, "%s/%s", dir, wfile[kind]);
	int rc = share_weights(path, config, prefix);
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (rc == 0)
		rc = cdm_st_open(&io, path, &err);
	j.kind = kind, j.prefix = prefix, j.config = config;
	if (rc == 0 && kind == K_UNET) {
		const struct cdm_st_tensor *tt = cdm_st_find(io, "t");
		rc = io_input(io, "x", &in[0], NULL) || io_input(io, "ctx", &in[1], NULL) ||
		     io_input(io, "eps", NULL, &ref) || !tt || tt->dtype != CDM_I64 || tt->numel > 8;
		for (uint64_t i = 0; rc == 0 && i < tt->numel; i++) {
			int64_t v;
			memcpy(&v, tt->data + 8 * i, 8);
			j.t[i] = (double)v;
		}
	} else if (rc == 0 && kind == K_VAE) {
		rc = io_input(io, "z", &in[0], NULL) || io_input(io, "x", NULL, &ref);
	} else if (rc == 0) {
		const struct cdm_st_tensor *it = cdm_st_find(io, "ids");
		struct cdm_clip_config cc;
		rc = !it || it->dtype != CDM_I64 || it->ndim != 2 ||
		     cdm_clip_config_parse(&cc, config, strlen(config), cfgp, &err) < 0 ||
		     io_input(io, "ctx", NULL, &ref);
		if (rc == 0) {
			int64_t *ids = malloc(it->numel * 8);
			memcpy(ids, it->data, it->numel * 8);
			j.batch = it->shape[0], j.len = it->shape[1];
			make_onehot(&in[0], ids, j.batch * j.len, cc.vocab_size);
			free(ids);
		}
	}
	CHECK(rc == 0, "%s: setup failed %s", name, err.msg);
	j.in[0] = &in[0], j.in[1] = &in[1];
	cur_model = &j;
	void *args[3] = {0};
	double t0 = cdm_now();
	if (rc == 0) {
		CHECK(mpc_run3(party_model, args) == 0, "%s: harness", name);
		for (int p = 0; p < 3; p++) {
			CHECK(j.rc[p] == 0, "%s: party %d: %s", name, p, j.msg[p]);
			rc |= j.rc[p];
		}
	}
	if (rc == 0) {
		double rel, mx;
		rel_err(j.out[0], ref, j.nout, &rel, &mx);
		fprintf(stderr, "  %-12s secure %-27s rel_rms=%.2e max_abs=%.2e %.2fs %.2f MB/party "
			"%llu rounds\n", name, what[kind], rel, mx, cdm_now() - t0,
			mpc_h_sent[0] / 1e6, (unsigned long long)mpc_h_rounds[0]);
		CHECK(rel <= 1e-2, "%s: secure vs torch rel RMS %.3g > 1e-2", name, rel);
	}
	for (int p = 0; p < 3; p++) {
		free(j.out[p]);
		snprintf(path, sizeof path, "%s.%d", prefix, p);
		unlink(path);
	}
	rmdir(tmpl);
	free_input(&in[0]);
	free_input(&in[1]);
	cdm_free(ref);
	free(config);
	if (io)
		cdm_st_close(io);
}

static void test_models(void)
{
	const char *root = getenv("CDM_GOLDEN_SD_DIR");
	root = root ? root : "tests/golden_sd";
	DIR *d = opendir(root);
	CHECK(d != NULL, "no golden directory %s", root);
	if (!d)
		return;
	int seen[3] = {0};
	struct dirent *e;
	char names[64][128];
	int n = 0;
	while ((e = readdir(d)) && n < 64)
		if (e->d_name[0] != '.')
			snprintf(names[n++], sizeof names[0], "%.120s", e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
	for (int i = 0; i < n; i++) {
		char dir[4200], p[4300];
		snprintf(dir, sizeof dir, "%.3000s/%.120s", root, names[i]);
		snprintf(p, sizeof p, "%s/config.json", dir);
		char *cfg = slurp(p);
		if (!cfg)
			continue; /* the tokenizer case */
		enum kind k = strstr(cfg, "UNet2DConditionModel") ? K_UNET
			      : strstr(cfg, "AutoencoderKL")      ? K_VAE
								  : K_CLIP;
		free(cfg);
		seen[k]++;
		run_model(dir, names[i], k);
	}
	CHECK(seen[K_UNET] && seen[K_VAE] && seen[K_CLIP],
	      "golden cases missing: %d unet, %d vae, %d clip", seen[0], seen[1], seen[2]);
}

/* The SD 1.5 block list of cdm-bench sd has the real shapes: its parameter
 * counts equal those of the checkpoints' tensor lists (reference/keys/). */
static int64_t tsv_params(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int64_t total = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		char *p = strchr(line, '[');
		int64_t n = 1;
		for (char *e; p && *p && *p != ']'; p = e) {
			long long d = strtoll(p + 1, &e, 10);
			if (e == p + 1)
				break;
			n *= d;
		}
		total += n;
	}
	fclose(f);
	return total;
}

static void test_sd15_shapes(void)
{
	CHECK(cdm_bench_sd_unet_params() == 859520964, "SD 1.5 UNet blocks: %lld parameters, "
	      "expected 859520964", (long long)cdm_bench_sd_unet_params());
	CHECK(cdm_bench_sd_vae_params() == 49490199, "SD VAE decoder blocks: %lld parameters, "
	      "expected 49490199", (long long)cdm_bench_sd_vae_params());
	int64_t u = tsv_params("/work/shared/reference/keys/keys_sd15_unet.tsv");
	int64_t v = tsv_params("/work/shared/reference/keys/keys_sd_vae_decoder.tsv");
	if (u >= 0)
		CHECK(u == cdm_bench_sd_unet_params(), "keys_sd15_unet.tsv: %lld parameters",
		      (long long)u);
	if (v >= 0)
		CHECK(v == cdm_bench_sd_vae_params(), "keys_sd_vae_decoder.tsv: %lld parameters",
		      (long long)v);
}

int main(void)
{
	rng = check_seed();
	test_sd15_shapes();
	test_ops();
	test_softmax_causal();
	test_models();
	return check_done();
}
