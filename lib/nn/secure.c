/*
 * nn/secure: the nn.h op table on replicated shares (see secure.h for the
 * protocol of each op). The wrappers in nn.c have checked every shape and
 * pre-allocated `out`; an op only fills out's sharing.
 *
 * Every function here that touches both share components does the same
 * thing to x_i and x_{i+1}: any local linear map (permutation, sum, product
 * with a PUBLIC matrix) keeps the replicated layout, so only products of two
 * secrets and truncations talk to the peers.
 */
#include "secure.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../ring/ring.h"
#include "secure_sd.h"

/* Columns of one conv im2col chunk are capped so that a chunk's im2col
 * buffers stay near 32 MB per component whatever the batch size. */
#define CONV_CHUNK_ELEMS ((int64_t)4 << 20)

/* Sibling linears (see "sibling linears" below): weights known to share
 * their input, and the last group product of each group. */
#define SIB_MAX 96
#define SIB_GROUPS 48
#define SIB_KEY 128

struct sib_w {
	const cdm_tensor *w; /* secret weight [on x in] */
	uint64_t serial;     /* its tensor's serial: a reused pointer never matches */
	int group;
};

struct sib_cache {
	uint64_t x;          /* serial of the input the product was made for; 0 = none */
	size_t rows, total;  /* product [rows x total] */
	int n;               /* members in it */
	int member[SIB_MAX]; /* index into sec_ctx.sib */
	size_t off[SIB_MAX]; /* first column of each member */
	int served[SIB_MAX];
	cdm_shr y;
};

struct sec_ctx {
	cdm_mpc *m;          /* borrowed session */
	enum cdm_suite suite;
	int F;               /* fraction bits of the session */
	cdm_share *model;    /* borrowed weight source, or NULL */
	cdm_st *pubw[CDM_NN_PUBLIC_FILES]; /* borrowed PUBLIC weight files (public-model
				     * mode; a name is looked up in order), or none */
	size_t npubw;
	const char *phase;   /* label of the generic ops */
	uint64_t serial;     /* serial of the last tensor made */
	struct sib_w sib[SIB_MAX];
	int nsib;
	char gkey[SIB_GROUPS][SIB_KEY];
	int ngroups;
	struct sib_cache cache[SIB_GROUPS];
};

struct sdata {
	cdm_shr s;     /* this party's components [numel] */
	float *pub;    /* PUBLIC values [numel], or NULL for a secret tensor */
	int integer;   /* values are integers (one-hot), not fixed point */
	int borrowed;  /* s.a / s.b point into the model share (read-only) */
	uint64_t serial; /* unique per tensor of this context (sibling linears) */
};

struct stensor {
	cdm_tensor t;
	struct sdata d;
};

static struct sdata *SD(const cdm_tensor *t)
{
	return (struct sdata *)t->data;
}

static cdm_shr *SO(cdm_tensor *t)
{
	return &SD(t)->s;
}

static const cdm_shr *SI(const cdm_tensor *t)
{
	return &SD(t)->s;
}

const cdm_shr *cdm_nn_secure_shr(const cdm_tensor *t)
{
	return SI(t);
}

static size_t numel(const cdm_tensor *t)
{
	return (size_t)cdm_tensor_numel(t);
}

static void label(struct sec_ctx *c, const char *l)
{
	cdm_mpc_set_label(c->m, l);
}

static uint64_t enc(double v, int bits)
{
	return (uint64_t)(int64_t)llround(v * ldexp(1.0, bits));
}

/* A view of n elements of s starting at off (no ownership). */
static cdm_shr view(const cdm_shr *s, size_t off, size_t n)
{
	cdm_shr v = {n, s->a + off, s->b + off};
	return v;
}

/* Move the contents of *src into the pre-allocated *dst of the same size. */
static void move_into(cdm_shr *dst, cdm_shr *src)
{
	cdm_shr_free(dst);
	*dst = *src;
	memset(src, 0, sizeof *src);
}

/* ---- life cycle --------------------------------------------------------- */

static int new_tensor(struct sec_ctx *c, int ndim, const int64_t *dim, int alloc_data,
		      cdm_tensor **out, struct cdm_err *err)
{
	struct stensor *st = cdm_zalloc(1, sizeof *st, err);
	if (!st)
		return CDM_ENOMEM;
	st->t.ndim = ndim;
	for (int i = 0; i < CDM_NN_MAX_DIMS; i++)
		st->t.dim[i] = i < ndim ? dim[i] : 1;
	st->t.data = &st->d;
	st->d.serial = ++c->serial;
	if (alloc_data && cdm_shr_new(&st->d.s, numel(&st->t), err) < 0) {
		cdm_free(st);
		return CDM_ENOMEM;
	}
	*out = &st->t;
	return 0;
}

static int s_alloc(void *ctx, int ndim, const int64_t *dim, cdm_tensor **out,
		   struct cdm_err *err)
{
	return new_tensor(ctx, ndim, dim, 1, out, err);
}

static void sib_forget(struct sec_ctx *c, const cdm_tensor *t);

static void s_free(void *ctx, cdm_tensor *t)
{
	if (!t)
		return;
	sib_forget(ctx, t);
	struct sdata *d = SD(t);
	if (!d->borrowed)
		cdm_shr_free(&d->s);
	cdm_free(d->pub);
	cdm_free(t); /* t is the first member of its struct stensor */
}

static int s_set_public(void *vc, cdm_tensor *out, const float *data, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	size_t n = numel(out);
	struct sdata *d = SD(out);
	uint64_t *e = cdm_alloc(n, 8, err);
	if (!e)
		return CDM_ENOMEM;
	int rc = cdm_fxp_encode_f32(e, data, n, c->F, "public tensor", NULL, err);
	if (rc == 0 && !(d->pub = cdm_alloc(n, sizeof(float), err)))
		rc = CDM_ENOMEM;
	if (rc == 0) {
		memcpy(d->pub, data, n * sizeof(float));
		cdm_mpc_public(c->m, e, &d->s);
	}
	cdm_free(e);
	return rc;
}

/* The public weight file holding `name` (the first one when none does, so
 * that its loader names the file in the error). */
static cdm_st *pub_file(const struct sec_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->npubw; i++)
		if (cdm_st_find(c->pubw[i], name))
			return c->pubw[i];
	return c->pubw[0];
}

static int s_has_weight(void *vc, const char *name)
{
	struct sec_ctx *c = vc;
	if (c->npubw)
		return cdm_st_find(pub_file(c, name), name) != NULL;
	return c->model && cdm_share_find(c->model, name) != NULL;
}

/* ---- sibling linears ------------------------------------------------------------
 *
 * Linear layers that read the same input one after the other -- every
 * resnet's time_emb_proj on the one activated time embedding, an
 * attention's to_q, to_k and to_v on the same tokens -- run as ONE matmul
 * against their concatenated weights: one truncation and one set of rounds
 * instead of one per layer, the same bytes. The first layer of a group
 * called on a new input computes the product for every member of the group
 * with the same input width; the others take their slice. A slice is only
 * served for the same input tensor (serial numbers: tensors are written once,
 * by the op that makes them) and once per computation, so each layer gets
 * exactly what it would have computed alone (up to the truncation's fresh
 * randomness). The parties run the same calls, so they agree on every hit.
 * Suite cdm only: the spu and cipherdm baselines keep one product per layer. */

static void sib_drop(struct sib_cache *k)
{
	cdm_shr_free(&k->y);
	memset(k, 0, sizeof *k);
}

/* The group key of a weight name, or 0 when it has none. */
static int sib_key(const char *name, char key[SIB_KEY])
{
	static const char *const qkv[] = {".to_q.weight", ".to_k.weight", ".to_v.weight",
					  ".query.weight", ".key.weight", ".value.weight"};
	size_t n = strlen(name);
	const char *temb = ".time_emb_proj.weight";
	if (n >= strlen(temb) && !strcmp(name + n - strlen(temb), temb)) {
		snprintf(key, SIB_KEY, "time_emb_proj");
		return 1;
	}
	for (size_t i = 0; i < sizeof qkv / sizeof qkv[0]; i++) {
		size_t l = strlen(qkv[i]);
		if (n > l && n - l + 4 < SIB_KEY && !strcmp(name + n - l, qkv[i])) {
			snprintf(key, SIB_KEY, "%.*s.qkv", (int)(n - l), name);
			return 1;
		}
	}
	return 0;
}

/* Record a secret weight that has siblings (when there is room). */
static void sib_note(struct sec_ctx *c, const char *name, const cdm_tensor *w)
{
	char key[SIB_KEY];
	if (!sib_key(name, key) || c->nsib == SIB_MAX)
		return;
	int g = 0;
	while (g < c->ngroups && strcmp(c->gkey[g], key))
		g++;
	if (g == c->ngroups) {
		if (g == SIB_GROUPS)
			return;
		memcpy(c->gkey[g], key, SIB_KEY);
		c->ngroups++;
	}
	c->sib[c->nsib++] = (struct sib_w){w, SD(w)->serial, g};
}

/* A weight is freed (through this context: models free their weights with
 * the cdm_nn that made them): forget it and its group's product. */
static void sib_forget(struct sec_ctx *c, const cdm_tensor *t)
{
	for (int i = 0; c && i < c->nsib; i++) {
		if (c->sib[i].w != t)
			continue;
		sib_drop(&c->cache[c->sib[i].group]);
		c->sib[i] = c->sib[--c->nsib];
		/* moving the last entry renumbers it: no product may refer to it */
		if (i < c->nsib)
			sib_drop(&c->cache[c->sib[i].group]);
		return;
	}
}

static int sib_find(const struct sec_ctx *c, const cdm_tensor *w)
{
	for (int i = 0; i < c->nsib; i++)
		if (c->sib[i].w == w && c->sib[i].serial == SD(w)->serial)
			return i;
	return -1;
}


/* The group product of sibling si's group for input x [rows x in]. */
static int sib_compute(struct sec_ctx *c, int si, const cdm_tensor *x, size_t rows,
		       size_t in, struct cdm_err *err)
{
	struct sib_cache *k = &c->cache[c->sib[si].group];
	sib_drop(k);
	for (int i = 0; i < c->nsib; i++) {
		const struct sib_w *e = &c->sib[i];
		if (e->group != c->sib[si].group || (size_t)e->w->dim[1] != in)
			continue;
		k->member[k->n] = i;
		k->off[k->n++] = k->total;
		k->total += (size_t)e->w->dim[0];
	}
	cdm_shr wt = {0};
	int rc = cdm_shr_new(&wt, in * k->total, err);
	for (int j = 0; rc == 0 && j < k->n; j++) { /* W^T of every member, side by side */
		const cdm_tensor *w = c->sib[k->member[j]].w;
		size_t on = (size_t)w->dim[0];
		for (size_t o = 0; o < on; o++)
			for (size_t i = 0; i < in; i++) {
				wt.a[i * k->total + k->off[j] + o] = SI(w)->a[o * in + i];
				wt.b[i * k->total + k->off[j] + o] = SI(w)->b[o * in + i];
			}
	}
	if (rc == 0)
		rc = cdm_mpc_matmul(c->m, &k->y, SI(x), &wt, 1, rows, in, k->total, c->F, err);
	cdm_shr_free(&wt);
	if (rc == 0) {
		k->x = SD(x)->serial;
		k->rows = rows;
	} else {
		sib_drop(k);
	}
	return rc;
}

/* out = x W^T for a weight with siblings; 1 when w has none (the caller
 * computes it alone), 0 or an error otherwise. */
static int sib_linear(struct sec_ctx *c, cdm_tensor *out, const cdm_tensor *x,
		      const cdm_tensor *w, size_t rows, size_t in, size_t on, struct cdm_err *err)
{
	int si = sib_find(c, w);
	/* the baseline suites keep one product per layer, as SPU would */
	if (si < 0 || SD(x)->pub || SD(x)->integer || c->suite != CDM_SUITE_CDM)
		return 1;
	struct sib_cache *k = &c->cache[c->sib[si].group];
	int j = -1;
	for (int t = 0; k->x == SD(x)->serial && t < k->n; t++)
		if (k->member[t] == si && !k->served[t])
			j = t;
	if (j < 0) {
		int members = 0;
		for (int i = 0; i < c->nsib; i++)
			members += c->sib[i].group == c->sib[si].group &&
				   (size_t)c->sib[i].w->dim[1] == in;
		if (members < 2)
			return 1;
		CDM_TRY(sib_compute(c, si, x, rows, in, err));
		for (int t = 0; t < k->n; t++)
			if (k->member[t] == si)
				j = t;
	}
	cdm_shr *o = SO(out);
	if (!o->a)
		CDM_TRY(cdm_shr_new(o, rows * on, err));
	for (size_t r = 0; r < rows; r++) {
		memcpy(o->a + r * on, k->y.a + r * k->total + k->off[j], on * 8);
		memcpy(o->b + r * on, k->y.b + r * k->total + k->off[j], on * 8);
	}
	k->served[j] = 1;
	int left = 0;
	for (int t = 0; t < k->n; t++)
		left += !k->served[t];
	if (!left) /* every member had its slice: free the product */
		sib_drop(k);
	return 0;
}

/* Public-model mode: a weight is a public tensor (its floats and their
 * trivial sharing). */
static int pub_weight(struct sec_ctx *c, const char *name, int ndim, const int64_t *dim,
		      cdm_tensor **out, struct cdm_err *err)
{
	float *data = NULL;
	cdm_st *w = pub_file(c, name);
	CDM_TRY(cdm_st_load_f32(w, name, ndim, dim, &data, err));
	int64_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= dim[i];
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(data[i])) {
			cdm_free(data);
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%s': element %lld is %s",
					cdm_st_path(w), name, (long long)i,
					isnan(data[i]) ? "NaN" : "infinite");
		}
	int rc = new_tensor(c, ndim, dim, 1, out, err);
	if (rc == 0 && (rc = s_set_public(c, *out, data, err)) < 0) {
		s_free(c, *out);
		*out = NULL;
	}
	cdm_free(data);
	return rc;
}

static int s_weight(void *vc, const char *name, int ndim, const int64_t *dim, cdm_tensor **out,
		    struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	if (c->npubw)
		return pub_weight(c, name, ndim, dim, out, err);
	if (!c->model)
		return cdm_fail(err, CDM_EINPUT, "weight '%s' requested but no model share is bound",
				name);
	const uint64_t *a, *b;
	CDM_TRY(cdm_share_get(c->model, name, ndim, dim, &a, &b, err));
	CDM_TRY(new_tensor(c, ndim, dim, 0, out, err));
	sib_note(c, name, *out);
	struct sdata *d = SD(*out);
	/* The share file is read-only: no op ever writes into an input's
	 * components, so dropping const here is safe. */
	d->s.n = numel(*out);
	d->s.a = (uint64_t *)a;
	d->s.b = (uint64_t *)b;
	d->borrowed = 1;
	return 0;
}

/* Reveal to all three parties (tests and debugging only: the UNet and the
 * samplers never call it). */
static int s_read(void *vc, const cdm_tensor *t, float *out, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	size_t n = numel(t);
	uint64_t *v = cdm_alloc(n, 8, err);
	if (!v)
		return CDM_ENOMEM;
	int rc = cdm_mpc_reveal(c->m, SI(t), v, err);
	if (rc == 0)
		cdm_fxp_decode_f32(out, v, n, SD(t)->integer ? 0 : c->F);
	cdm_free(v);
	return rc;
}

/* ---- products with public matrices ---------------------------------------- */

static int all_integer(const float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != floorf(p[i]) || fabsf(p[i]) > 1048576.0f)
			return 0;
	return 1;
}

/* out[r x n] = P[r x k] * S[k x n] with P public floats: a local GEMM on
 * both components, then one truncation by F -- or none when P holds
 * integers (a one-hot row). */
static int pub_matmul(struct sec_ctx *c, cdm_shr *out, const float *p, const cdm_shr *s,
		      size_t r, size_t k, size_t n, struct cdm_err *err)
{
	int shift = all_integer(p, r * k) ? 0 : c->F;
	cdm_shr t = {0};
	uint64_t *pe = cdm_alloc(r * k, 8, err);
	if (!pe)
		return CDM_ENOMEM;
	for (size_t i = 0; i < r * k; i++)
		pe[i] = enc(p[i], shift);
	int rc = cdm_shr_new(&t, r * n, err);
	if (rc == 0) {
		cdm_ring_gemm(t.a, pe, s->a, r, k, n, 0);
		cdm_ring_gemm(t.b, pe, s->b, r, k, n, 0);
		if (shift)
			rc = cdm_mpc_trunc(c->m, out, &t, shift, err);
		else
			move_into(out, &t);
	}
	cdm_free(pe);
	cdm_shr_free(&t);
	return rc;
}

/* dst[k x n] = src[n x k]^T for both components. */
static int transpose(cdm_shr *dst, const cdm_shr *src, size_t n, size_t k, struct cdm_err *err)
{
	CDM_TRY(cdm_shr_new(dst, n * k, err));
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < k; j++) {
			dst->a[j * n + i] = src->a[i * k + j];
			dst->b[j * n + i] = src->b[i * k + j];
		}
	return 0;
}

/* Add a secret vector v[cols] to every row of s[rows x cols] (local). */
static void add_rows(cdm_shr *s, const cdm_shr *v, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++)
		for (size_t j = 0; j < cols; j++) {
			s->a[r * cols + j] += v->a[j];
			s->b[r * cols + j] += v->b[j];
		}
}

/* ---- convolution ------------------------------------------------------------- */

/* col[(ci*kh + i)*kw + j][off + oy*wo + ox] (row stride ld) = padded
 * x[ci][oy*s + i - top][ox*s + j - left], for one image of one component. */
static void im2col(const uint64_t *x, int64_t ci_n, int64_t h, int64_t w, int64_t kh,
		   int64_t kw, int stride, const int pad[4], int64_t ho, int64_t wo,
		   uint64_t *col, int64_t ld, int64_t off)
{
	for (int64_t ci = 0; ci < ci_n; ci++)
		for (int64_t i = 0; i < kh; i++)
			for (int64_t j = 0; j < kw; j++) {
				uint64_t *dst = col + ((ci * kh + i) * kw + j) * ld + off;
				for (int64_t oy = 0; oy < ho; oy++) {
					int64_t y = oy * stride + i - pad[0];
					uint64_t *row = dst + oy * wo;
					if (y < 0 || y >= h) {
						memset(row, 0, (size_t)wo * 8);
						continue;
					}
					const uint64_t *src = x + (ci * h + y) * w;
					for (int64_t ox = 0; ox < wo; ox++) {
						int64_t xx = ox * stride + j - pad[1];
						row[ox] = xx < 0 || xx >= w ? 0 : src[xx];
					}
				}
			}
}

static int s_conv2d(void *vc, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		    const cdm_tensor *bias, int stride, const int pad[4], struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "conv");
	int64_t B = x->dim[0], ci = x->dim[1], h = x->dim[2], wd = x->dim[3];
	int64_t co = w->dim[0], kh = w->dim[2], kw = w->dim[3];
	int64_t ho = out->dim[2], wo = out->dim[3], P = ho * wo, K = ci * kh * kw;
	int64_t per = CONV_CHUNK_ELEMS / (K * P);
	if (per < 1)
		per = 1;
	const cdm_shr *xs = SI(x), *ws = SI(w);
	cdm_shr *o = SO(out);
	int rc = 0;
	for (int64_t b0 = 0; b0 < B && rc == 0; b0 += per) {
		int64_t nb = B - b0 < per ? B - b0 : per, cols = nb * P;
		cdm_shr col = {0}, y = {0};
		if ((rc = cdm_shr_new(&col, (size_t)(K * cols), err)) < 0)
			break;
		for (int64_t j = 0; j < nb; j++) {
			size_t xo = (size_t)((b0 + j) * ci * h * wd);
			im2col(xs->a + xo, ci, h, wd, kh, kw, stride, pad, ho, wo, col.a, cols, j * P);
			im2col(xs->b + xo, ci, h, wd, kh, kw, stride, pad, ho, wo, col.b, cols, j * P);
		}
		if (SD(w)->pub) /* public weights: local products + one truncation */
			rc = pub_matmul(c, &y, SD(w)->pub, &col, (size_t)co, (size_t)K,
					(size_t)cols, err);
		else
			rc = cdm_mpc_matmul(c->m, &y, ws, &col, 1, (size_t)co, (size_t)K,
					    (size_t)cols, c->F, err);
		/* y[co][j*P + p] -> out[b0+j][co][p], plus the bias */
		for (int64_t j = 0; rc == 0 && j < nb; j++)
			for (int64_t oc = 0; oc < co; oc++) {
				size_t src = (size_t)(oc * cols + j * P);
				size_t dst = (size_t)(((b0 + j) * co + oc) * P);
				uint64_t ba = bias ? SI(bias)->a[oc] : 0, bb = bias ? SI(bias)->b[oc] : 0;
				for (int64_t p = 0; p < P; p++) {
					o->a[dst + p] = y.a[src + p] + ba;
					o->b[dst + p] = y.b[src + p] + bb;
				}
			}
		cdm_shr_free(&col);
		cdm_shr_free(&y);
	}
	return rc;
}

/* ---- linear and embedding --------------------------------------------------- */

/* Public x, public W and bias: plain float32 (y = x W^T + b), kept public. */
static int linear_all_pub(struct sec_ctx *c, cdm_tensor *out, const float *x, const float *w,
			  const float *b, size_t rows, size_t in, size_t on, struct cdm_err *err)
{
	float *y = cdm_alloc(rows * on, sizeof *y, err);
	if (!y)
		return CDM_ENOMEM;
	for (size_t r = 0; r < rows; r++)
		for (size_t o = 0; o < on; o++) {
			float acc = b ? b[o] : 0.0f;
			for (size_t i = 0; i < in; i++)
				acc += x[r * in + i] * w[o * in + i];
			y[r * on + o] = acc;
		}
	int rc = s_set_public(c, out, y, err);
	cdm_free(y);
	return rc;
}

/* Secret x [rows x in] times public W^T: local GEMM on both components
 * against the encoded W^T, then one truncation (none for an integer x). */
static int linear_pub(struct sec_ctx *c, cdm_tensor *out, const cdm_tensor *x,
		      const cdm_tensor *w, const cdm_tensor *bias, size_t rows, size_t in,
		      size_t on, struct cdm_err *err)
{
	const float *wp = SD(w)->pub;
	if (SD(x)->pub && (!bias || SD(bias)->pub))
		return linear_all_pub(c, out, SD(x)->pub, wp, bias ? SD(bias)->pub : NULL, rows,
				      in, on, err);
	int shift = SD(x)->integer ? 0 : c->F;
	cdm_shr t = {0};
	uint64_t *we = cdm_alloc(in * on, 8, err);
	if (!we)
		return CDM_ENOMEM;
	for (size_t o = 0; o < on; o++)
		for (size_t i = 0; i < in; i++)
			we[i * on + o] = enc(wp[o * in + i], c->F);
	int rc = cdm_shr_new(&t, rows * on, err);
	if (rc == 0) {
		cdm_ring_gemm(t.a, SI(x)->a, we, rows, in, on, 0);
		cdm_ring_gemm(t.b, SI(x)->b, we, rows, in, on, 0);
		if (shift)
			rc = cdm_mpc_trunc(c->m, SO(out), &t, shift, err);
		else
			move_into(SO(out), &t);
	}
	cdm_free(we);
	cdm_shr_free(&t);
	if (rc == 0 && bias)
		add_rows(SO(out), SI(bias), rows, on);
	return rc;
}

static int s_linear(void *vc, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		    const cdm_tensor *bias, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "linear");
	size_t in = (size_t)w->dim[1], on = (size_t)w->dim[0], rows = numel(x) / in;
	if (SD(w)->pub)
		return linear_pub(c, out, x, w, bias, rows, in, on, err);
	int rc = sib_linear(c, out, x, w, rows, in, on, err);
	if (rc <= 0) {
		if (rc == 0 && bias)
			add_rows(SO(out), SI(bias), rows, on);
		return rc;
	}
	cdm_shr wt = {0};
	CDM_TRY(transpose(&wt, SI(w), on, in, err));
	if (SD(x)->pub)
		rc = pub_matmul(c, SO(out), SD(x)->pub, &wt, rows, in, on, err);
	else
		rc = cdm_mpc_matmul(c->m, SO(out), SI(x), &wt, 1, rows, in, on,
				    SD(x)->integer ? 0 : c->F, err);
	cdm_shr_free(&wt);
	if (rc == 0 && bias)
		add_rows(SO(out), SI(bias), rows, on);
	return rc;
}

/* Secret one-hot [B x K] times a PUBLIC table [K x D]: local products;
 * an integer one-hot needs no truncation. */
static int embed_pub(struct sec_ctx *c, cdm_tensor *out, const cdm_tensor *onehot,
		     const float *table, size_t B, size_t K, size_t D, struct cdm_err *err)
{
	int shift = SD(onehot)->integer ? 0 : c->F;
	cdm_shr t = {0};
	uint64_t *te = cdm_alloc(K * D, 8, err);
	if (!te)
		return CDM_ENOMEM;
	for (size_t i = 0; i < K * D; i++)
		te[i] = enc(table[i], c->F);
	int rc = cdm_shr_new(&t, B * D, err);
	if (rc == 0) {
		cdm_ring_gemm(t.a, SI(onehot)->a, te, B, K, D, 0);
		cdm_ring_gemm(t.b, SI(onehot)->b, te, B, K, D, 0);
		if (shift)
			rc = cdm_mpc_trunc(c->m, SO(out), &t, shift, err);
		else
			move_into(SO(out), &t);
	}
	cdm_free(te);
	cdm_shr_free(&t);
	return rc;
}

static int s_embed(void *vc, cdm_tensor *out, const cdm_tensor *onehot, const cdm_tensor *table,
		   struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "embed");
	size_t B = (size_t)onehot->dim[0], K = (size_t)onehot->dim[1], D = (size_t)table->dim[1];
	if (SD(onehot)->pub)
		return pub_matmul(c, SO(out), SD(onehot)->pub, SI(table), B, K, D, err);
	if (SD(table)->pub) /* public table: onehot x table is local */
		return embed_pub(c, out, onehot, SD(table)->pub, B, K, D, err);
	/* A secret integer one-hot times the fixed-point table needs no
	 * truncation: the product is exactly the selected row. */
	return cdm_mpc_matmul(c->m, SO(out), SI(onehot), SI(table), 1, B, K, D,
			      SD(onehot)->integer ? 0 : c->F, err);
}

/* ---- normalisation ------------------------------------------------------------ */

/* v[C] expanded to n elements: element i takes v[(i / inner) % C]. */
static int expand(cdm_shr *dst, const cdm_shr *v, size_t n, size_t C, size_t inner,
		  struct cdm_err *err)
{
	CDM_TRY(cdm_shr_new(dst, n, err));
	for (size_t i = 0; i < n; i++) {
		size_t ch = (i / inner) % C;
		dst->a[i] = v->a[ch];
		dst->b[i] = v->b[ch];
	}
	return 0;
}

/* out = nrm * gamma + beta with gamma, beta [C] broadcast as in expand(). */
static int affine(struct sec_ctx *c, cdm_shr *out, const cdm_shr *nrm, const cdm_tensor *gamma,
		  const cdm_tensor *beta, size_t C, size_t inner, struct cdm_err *err)
{
	cdm_shr g = {0}, b = {0};
	int rc;
	if (SD(gamma)->pub) { /* public gamma: a local product + one truncation */
		uint64_t *ge = cdm_alloc(nrm->n, 8, err);
		if (!ge)
			return CDM_ENOMEM;
		for (size_t i = 0; i < nrm->n; i++)
			ge[i] = enc(SD(gamma)->pub[(i / inner) % C], c->F);
		rc = cdm_mpc_mul_pub_trunc(c->m, out, nrm, ge, err);
		cdm_free(ge);
	} else {
		rc = expand(&g, SI(gamma), nrm->n, C, inner, err);
		if (rc == 0)
			rc = cdm_mpc_mul_trunc(c->m, out, nrm, &g, err);
	}
	if (rc == 0)
		rc = expand(&b, SI(beta), nrm->n, C, inner, err);
	if (rc == 0)
		cdm_mpc_add(c->m, out, out, &b);
	cdm_shr_free(&g);
	cdm_shr_free(&b);
	return rc;
}

/*
 * Suite cdm: the norm with gamma and beta fused in (cdm_nl_norm_rows_affine):
 * d * gamma rides in the round of the squares and the final product, so the
 * affine map costs no round (3 rounds saved per norm against norm, then
 * mul_trunc). A public gamma becomes a sharing without communication. The
 * baseline suites keep the separate product, as SPU would.
 */
static int norm_fused(struct sec_ctx *c, cdm_shr *out, const cdm_shr *x, size_t rows,
		      size_t cols, double eps, const cdm_tensor *gamma, const cdm_tensor *beta,
		      size_t C, size_t inner, struct cdm_err *err)
{
	cdm_shr g = {0}, b = {0};
	int rc = 0;
	if (SD(gamma)->pub) {
		uint64_t *ge = cdm_alloc(x->n, 8, err);
		if (!ge)
			return CDM_ENOMEM;
		for (size_t i = 0; i < x->n; i++)
			ge[i] = enc(SD(gamma)->pub[(i / inner) % C], c->F);
		rc = cdm_shr_new(&g, x->n, err);
		if (rc == 0)
			cdm_mpc_public(c->m, ge, &g);
		cdm_free(ge);
	} else {
		rc = expand(&g, SI(gamma), x->n, C, inner, err);
	}
	if (rc == 0)
		rc = expand(&b, SI(beta), x->n, C, inner, err);
	if (rc == 0)
		rc = cdm_nl_norm_rows_affine(c->m, c->suite, out, x, rows, cols, eps, &g, &b, err);
	cdm_shr_free(&g);
	cdm_shr_free(&b);
	return rc;
}

static int s_group_norm(void *vc, cdm_tensor *out, const cdm_tensor *x, int groups, double eps,
			const cdm_tensor *gamma, const cdm_tensor *beta, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "groupnorm");
	size_t B = (size_t)x->dim[0], C = (size_t)x->dim[1], n = numel(x);
	size_t inner = n / (B * C), rows = B * (size_t)groups;
	if (c->suite == CDM_SUITE_CDM)
		return norm_fused(c, SO(out), SI(x), rows, n / rows, eps, gamma, beta, C, inner,
				  err);
	cdm_shr nrm = {0};
	int rc = cdm_nl_norm_rows(c->m, c->suite, &nrm, SI(x), rows, n / rows, eps, err);
	if (rc == 0)
		rc = affine(c, SO(out), &nrm, gamma, beta, C, inner, err);
	cdm_shr_free(&nrm);
	return rc;
}

static int s_layer_norm(void *vc, cdm_tensor *out, const cdm_tensor *x, double eps,
			const cdm_tensor *gamma, const cdm_tensor *beta, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "layernorm");
	size_t D = (size_t)x->dim[x->ndim - 1], n = numel(x);
	if (c->suite == CDM_SUITE_CDM)
		return norm_fused(c, SO(out), SI(x), n / D, D, eps, gamma, beta, D, 1, err);
	cdm_shr nrm = {0};
	int rc = cdm_nl_norm_rows(c->m, c->suite, &nrm, SI(x), n / D, D, eps, err);
	if (rc == 0)
		rc = affine(c, SO(out), &nrm, gamma, beta, D, 1, err);
	cdm_shr_free(&nrm);
	return rc;
}

/* ---- activations ------------------------------------------------------------- */

static const char *act_label(enum cdm_act k)
{
	static const char *const names[CDM_ACT_COUNT] = {
		[CDM_ACT_SILU] = "silu", [CDM_ACT_MISH] = "mish", [CDM_ACT_GELU] = "gelu",
		[CDM_ACT_RELU] = "relu", [CDM_ACT_EXP] = "exp",   [CDM_ACT_SQRT] = "sqrt",
		[CDM_ACT_QUICK_GELU] = "gelu",
	};
	return (unsigned)k < CDM_ACT_COUNT ? names[k] : "act";
}

/* An activation of a PUBLIC tensor is public: float32 as the plaintext
 * backend computes it, no protocol. */
static int act_pub(struct sec_ctx *c, cdm_tensor *out, const float *x, enum cdm_act kind,
		   struct cdm_err *err)
{
	size_t n = numel(out);
	float *y = cdm_alloc(n, sizeof *y, err);
	if (!y)
		return CDM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		double v = x[i], r;
		switch (kind) {
		case CDM_ACT_SILU: r = v / (1.0 + exp(-v)); break;
		case CDM_ACT_MISH: r = v * tanh(v > 20 ? v : log1p(exp(v))); break;
		case CDM_ACT_GELU: r = 0.5 * v * (1.0 + erf(v / sqrt(2.0))); break;
		case CDM_ACT_RELU: r = v > 0 ? v : 0; break;
		case CDM_ACT_EXP: r = exp(v); break;
		case CDM_ACT_SQRT: r = v > 0 ? sqrt(v) : 0; break;
		case CDM_ACT_QUICK_GELU: r = v / (1.0 + exp(-1.702 * v)); break;
		default:
			cdm_free(y);
			return cdm_fail(err, CDM_EINTERNAL, "secure act: unknown activation %d",
					(int)kind);
		}
		y[i] = (float)r;
	}
	int rc = s_set_public(c, out, y, err);
	cdm_free(y);
	return rc;
}

static int s_act(void *vc, cdm_tensor *out, const cdm_tensor *x, enum cdm_act kind,
		 struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, act_label(kind));
	if (SD(x)->pub)
		return act_pub(c, out, SD(x)->pub, kind, err);
	const cdm_shr *xs = SI(x);
	cdm_shr *o = SO(out);
	switch (kind) {
	case CDM_ACT_SILU: return cdm_nl_silu(c->m, c->suite, o, xs, err);
	case CDM_ACT_MISH: return cdm_nl_mish(c->m, c->suite, o, xs, err);
	case CDM_ACT_GELU: return cdm_nl_gelu(c->m, c->suite, o, xs, err);
	case CDM_ACT_RELU: return cdm_mpc_relu(c->m, o, xs, err);
	case CDM_ACT_EXP: return cdm_nl_exp(c->m, c->suite, o, xs, err);
	case CDM_ACT_QUICK_GELU: return cdm_nn_secure_sd_quick_gelu(c->m, c->suite, o, xs, err);
	case CDM_ACT_SQRT: {
		/* sqrt(x) = x * rsqrt(x); rsqrt of x <= 0 is finite, so the
		 * product is 0 there as sqrt(max(x,0)) requires. */
		cdm_shr r = {0};
		int rc = cdm_nl_rsqrt(c->m, c->suite, &r, xs, err);
		if (rc == 0)
			rc = cdm_mpc_relu(c->m, o, xs, err);
		if (rc == 0)
			rc = cdm_mpc_mul_trunc(c->m, o, o, &r, err);
		cdm_shr_free(&r);
		return rc;
	}
	default:
		return cdm_fail(err, CDM_EINTERNAL, "secure act: unknown activation %d", (int)kind);
	}
}

/* ---- attention --------------------------------------------------------------- */

/* Per-head layout. dir 0: dst[bh][n][d] = src[b][n][h*dh + d] (heads out of
 * tokens); dir 1: the inverse. transposed: dst[bh][d][n] instead. */
static void heads(uint64_t *dst, const uint64_t *src, size_t B, size_t N, size_t H, size_t dh,
		  int dir, int transposed)
{
	size_t I = H * dh;
	for (size_t b = 0; b < B; b++)
		for (size_t h = 0; h < H; h++)
			for (size_t n = 0; n < N; n++)
				for (size_t d = 0; d < dh; d++) {
					size_t tok = (b * N + n) * I + h * dh + d;
					size_t hd = transposed ? ((b * H + h) * dh + d) * N + n
							       : ((b * H + h) * N + n) * dh + d;
					if (dir == 0)
						dst[hd] = src[tok];
					else
						dst[tok] = src[hd];
				}
}

static int heads_shr(cdm_shr *dst, const cdm_shr *src, size_t B, size_t N, size_t H, size_t dh,
		     int transposed, struct cdm_err *err)
{
	CDM_TRY(cdm_shr_new(dst, B * N * H * dh, err));
	heads(dst->a, src->a, B, N, H, dh, 0, transposed);
	heads(dst->b, src->b, B, N, H, dh, 0, transposed);
	return 0;
}

static int s_attention(void *vc, cdm_tensor *out, const cdm_tensor *q, const cdm_tensor *k,
		       const cdm_tensor *v, int nheads, double scale, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, "attention_matmul");
	size_t B = (size_t)q->dim[0], N = (size_t)q->dim[1], I = (size_t)q->dim[2];
	size_t M = (size_t)k->dim[1], H = (size_t)nheads, dh = I / H, BH = B * H;
	cdm_shr qs = {0}, qh = {0}, kt = {0}, vh = {0}, s = {0}, p = {0}, o = {0};
	int rc;
	/* The public scale goes on Q (N*I elements, fewer than the N*M scores
	 * whenever M > dh*heads... and never more than one truncation). */
	if ((rc = cdm_shr_new(&qs, B * N * I, err)) < 0)
		goto done;
	cdm_mpc_mul_int(c->m, &qs, SI(q), enc(scale, c->F));
	if ((rc = cdm_mpc_trunc(c->m, &qs, &qs, c->F, err)) < 0 ||
	    (rc = heads_shr(&qh, &qs, B, N, H, dh, 0, err)) < 0 ||
	    (rc = heads_shr(&kt, SI(k), B, M, H, dh, 1, err)) < 0 ||
	    (rc = heads_shr(&vh, SI(v), B, M, H, dh, 0, err)) < 0)
		goto done;
	if ((rc = cdm_mpc_matmul(c->m, &s, &qh, &kt, BH, N, dh, M, c->F, err)) < 0)
		goto done;
	label(c, "softmax");
	int fp = c->F + CDM_NL_SOFTMAX_EXTRA_BITS; /* |p v| sums stay < 2^62 for |v| < 2^16 */
	if ((rc = cdm_nl_softmax_rows_frac(c->m, c->suite, &p, &s, BH * N, M, fp, err)) < 0)
		goto done;
	label(c, "attention_matmul");
	if ((rc = cdm_mpc_matmul(c->m, &o, &p, &vh, BH, N, M, dh, fp, err)) < 0)
		goto done;
	heads(SO(out)->a, o.a, B, N, H, dh, 1, 0);
	heads(SO(out)->b, o.b, B, N, H, dh, 1, 0);
done:
	cdm_shr_free(&qs);
	cdm_shr_free(&qh);
	cdm_shr_free(&kt);
	cdm_shr_free(&vh);
	cdm_shr_free(&s);
	cdm_shr_free(&p);
	cdm_shr_free(&o);
	return rc;
}

/* ---- elementwise --------------------------------------------------------------- */

static int s_lincomb(void *vc, cdm_tensor *out, int n, const cdm_tensor *const *xs,
		     const double *coef, double c0, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, c->phase);
	size_t len = numel(out);
	int ints = 1, integer = 1;
	for (int i = 0; i < n; i++) {
		if (coef[i] != floor(coef[i]) || fabs(coef[i]) > 1048576.0)
			ints = 0;
		integer &= SD(xs[i])->integer;
	}
	if (c0 != floor(c0))
		integer = 0;
	/* Integer coefficients (adds, residual sums) need no truncation; any
	 * other combination is summed at 2F bits and truncated once. */
	int shift = ints ? 0 : c->F;
	cdm_shr acc = {0};
	CDM_TRY(cdm_shr_new(&acc, len, err));
	for (int i = 0; i < n; i++) {
		uint64_t k = enc(coef[i], shift);
		const cdm_shr *x = SI(xs[i]);
		for (size_t j = 0; j < len; j++) {
			acc.a[j] += k * x->a[j];
			acc.b[j] += k * x->b[j];
		}
	}
	int rc = 0;
	if (shift)
		rc = cdm_mpc_trunc(c->m, SO(out), &acc, shift, err);
	else
		move_into(SO(out), &acc);
	cdm_shr_free(&acc);
	if (rc < 0)
		return rc;
	SD(out)->integer = ints && integer;
	if (c0 != 0)
		cdm_mpc_add_const(c->m, SO(out), SO(out), enc(c0, SD(out)->integer ? 0 : c->F));
	return 0;
}

/* Secret product of two tensors of n elements; integer operands (one-hot)
 * need no truncation. */
static int mul_any(struct sec_ctx *c, cdm_tensor *out, const cdm_tensor *a, const cdm_shr *as,
		   const cdm_tensor *b, const cdm_shr *bs, struct cdm_err *err)
{
	if (SD(a)->integer || SD(b)->integer) {
		SD(out)->integer = SD(a)->integer && SD(b)->integer;
		return cdm_mpc_mul(c->m, SO(out), as, bs, err);
	}
	return cdm_mpc_mul_trunc(c->m, SO(out), as, bs, err);
}

static int s_mul(void *vc, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		 struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, c->phase);
	return mul_any(c, out, a, SI(a), b, SI(b), err);
}

static int s_bcast_add(void *vc, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
		       struct cdm_err *err)
{
	size_t n = numel(x), inner = n / numel(v);
	const cdm_shr *xs = SI(x), *vs = SI(v);
	cdm_shr *o = SO(out);
	for (size_t i = 0; i < n; i++) {
		o->a[i] = xs->a[i] + vs->a[i / inner];
		o->b[i] = xs->b[i] + vs->b[i / inner];
	}
	return 0;
}

static int s_bcast_mul(void *vc, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
		       struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, c->phase);
	size_t n = numel(x), nv = numel(v);
	cdm_shr e = {0};
	CDM_TRY(expand(&e, SI(v), n, nv, n / nv, err));
	int rc = mul_any(c, out, x, SI(x), v, &e, err);
	cdm_shr_free(&e);
	return rc;
}

/* min(max(x, lo), hi): the bits [x < lo] and [x > hi] in one comparison
 * call, then out = x + [x<lo](lo - x) + [x>hi](hi - x) in one round (the
 * bits are exclusive since lo <= hi). */
static int s_clamp(void *vc, cdm_tensor *out, const cdm_tensor *x, double lo, double hi,
		   struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, c->phase);
	size_t n = numel(x);
	const cdm_shr *xs = SI(x);
	uint64_t elo = enc(lo, c->F), ehi = enc(hi, c->F);
	cdm_shr d = {0}, bits = {0}, prod = {0};
	int rc = cdm_shr_new(&d, 2 * n, err);
	if (rc < 0)
		return rc;
	cdm_shr d0 = view(&d, 0, n), d1 = view(&d, n, n);
	cdm_mpc_add_const(c->m, &d0, xs, (uint64_t)0 - elo);  /* x - lo < 0 */
	cdm_ring_neg(d1.a, xs->a, n);                         /* hi - x < 0 */
	cdm_ring_neg(d1.b, xs->b, n);
	cdm_mpc_add_const(c->m, &d1, &d1, ehi);
	if ((rc = cdm_mpc_ltz(c->m, &bits, &d, err)) < 0)
		goto done;
	/* d0 becomes lo - x; d1 is already hi - x */
	cdm_ring_neg(d0.a, d0.a, n);
	cdm_ring_neg(d0.b, d0.b, n);
	if ((rc = cdm_mpc_mul(c->m, &prod, &bits, &d, err)) < 0)
		goto done;
	cdm_shr p0 = view(&prod, 0, n), p1 = view(&prod, n, n);
	cdm_mpc_add(c->m, SO(out), xs, &p0);
	cdm_mpc_add(c->m, SO(out), SO(out), &p1);
done:
	cdm_shr_free(&d);
	cdm_shr_free(&bits);
	cdm_shr_free(&prod);
	return rc;
}

/* ---- layout (local) ------------------------------------------------------------ */

static int s_concat(void *vc, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		    struct cdm_err *err)
{
	size_t B = (size_t)a->dim[0], na = numel(a) / B, nb = numel(b) / B;
	const cdm_shr *as = SI(a), *bs = SI(b);
	cdm_shr *o = SO(out);
	for (size_t i = 0; i < B; i++) {
		memcpy(o->a + i * (na + nb), as->a + i * na, na * 8);
		memcpy(o->b + i * (na + nb), as->b + i * na, na * 8);
		memcpy(o->a + i * (na + nb) + na, bs->a + i * nb, nb * 8);
		memcpy(o->b + i * (na + nb) + na, bs->b + i * nb, nb * 8);
	}
	SD(out)->integer = SD(a)->integer && SD(b)->integer;
	return 0;
}

static int s_slice(void *vc, cdm_tensor *out, const cdm_tensor *x, int64_t start,
		   struct cdm_err *err)
{
	size_t B = (size_t)x->dim[0], C = (size_t)x->dim[1], L = (size_t)out->dim[1];
	size_t inner = numel(x) / (B * C);
	const cdm_shr *xs = SI(x);
	cdm_shr *o = SO(out);
	for (size_t i = 0; i < B; i++) {
		size_t src = (i * C + (size_t)start) * inner, dst = i * L * inner;
		memcpy(o->a + dst, xs->a + src, L * inner * 8);
		memcpy(o->b + dst, xs->b + src, L * inner * 8);
	}
	SD(out)->integer = SD(x)->integer;
	return 0;
}

static int s_upsample2x(void *vc, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	size_t planes = (size_t)(x->dim[0] * x->dim[1]), h = (size_t)x->dim[2],
	       w = (size_t)x->dim[3];
	const cdm_shr *xs = SI(x);
	cdm_shr *o = SO(out);
	for (size_t p = 0; p < planes; p++)
		for (size_t y = 0; y < 2 * h; y++)
			for (size_t xx = 0; xx < 2 * w; xx++) {
				size_t d = (p * 2 * h + y) * 2 * w + xx, s = (p * h + y / 2) * w + xx / 2;
				o->a[d] = xs->a[s];
				o->b[d] = xs->b[s];
			}
	SD(out)->integer = SD(x)->integer;
	return 0;
}

/* Sum of each 2x2 window (local), then one truncation by 2 bits. */
static int s_avgpool2x(void *vc, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	label(c, c->phase);
	size_t planes = (size_t)(x->dim[0] * x->dim[1]), h = (size_t)x->dim[2],
	       w = (size_t)x->dim[3], ho = (size_t)out->dim[2], wo = (size_t)out->dim[3];
	const cdm_shr *xs = SI(x);
	cdm_shr s = {0};
	CDM_TRY(cdm_shr_new(&s, numel(out), err));
	for (size_t p = 0; p < planes; p++)
		for (size_t y = 0; y < ho; y++)
			for (size_t xx = 0; xx < wo; xx++) {
				size_t d = (p * ho + y) * wo + xx, i = (p * h + 2 * y) * w + 2 * xx;
				s.a[d] = xs->a[i] + xs->a[i + 1] + xs->a[i + w] + xs->a[i + w + 1];
				s.b[d] = xs->b[i] + xs->b[i + 1] + xs->b[i + w] + xs->b[i + w + 1];
			}
	int rc = cdm_mpc_trunc(c->m, SO(out), &s, 2, err);
	cdm_shr_free(&s);
	return rc;
}

/* [B,C,S] <-> [B,S,C] for both components. */
static void swap_last(cdm_shr *o, const cdm_shr *x, size_t B, size_t C, size_t S, int to_tok)
{
	for (size_t b = 0; b < B; b++)
		for (size_t ch = 0; ch < C; ch++)
			for (size_t s = 0; s < S; s++) {
				size_t img = (b * C + ch) * S + s, tok = (b * S + s) * C + ch;
				size_t d = to_tok ? tok : img, src = to_tok ? img : tok;
				o->a[d] = x->a[src];
				o->b[d] = x->b[src];
			}
}

static int s_to_tokens(void *vc, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	swap_last(SO(out), SI(x), (size_t)x->dim[0], (size_t)x->dim[1],
		  (size_t)(x->dim[2] * x->dim[3]), 1);
	SD(out)->integer = SD(x)->integer;
	return 0;
}

static int s_from_tokens(void *vc, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	swap_last(SO(out), SI(x), (size_t)out->dim[0], (size_t)out->dim[1],
		  (size_t)(out->dim[2] * out->dim[3]), 0);
	SD(out)->integer = SD(x)->integer;
	return 0;
}

/* ---- Stable Diffusion ops (secure_sd.c) ---------------------------------------- */

static int s_attention_causal(void *vc, cdm_tensor *out, const cdm_tensor *q, const cdm_tensor *k,
			      const cdm_tensor *v, int nheads, double scale, struct cdm_err *err)
{
	struct sec_ctx *c = vc;
	size_t H = (size_t)nheads;
	return cdm_nn_secure_sd_attention_causal(c->m, c->suite, SO(out), SI(q), SI(k), SI(v),
						 (size_t)q->dim[0], (size_t)q->dim[1], H,
						 (size_t)q->dim[2] / H, scale, err);
}

static int s_reshape(void *vc, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	SD(out)->integer = SD(x)->integer;
	return cdm_nn_secure_sd_reshape(SO(out), SI(x), err);
}

/* ---- the table ------------------------------------------------------------------ */

static const struct cdm_nn_ops secure_ops = {
	.name = "secure",
	.alloc = s_alloc,
	.free = s_free,
	.set_public = s_set_public,
	.load_weights = NULL,
	.has_weight = s_has_weight,
	.weight = s_weight,
	.read = s_read,
	.conv2d = s_conv2d,
	.linear = s_linear,
	.group_norm = s_group_norm,
	.layer_norm = s_layer_norm,
	.act = s_act,
	.attention = s_attention,
	.embed = s_embed,
	.lincomb = s_lincomb,
	.mul = s_mul,
	.bcast_add = s_bcast_add,
	.bcast_mul = s_bcast_mul,
	.clamp = s_clamp,
	.threshold = NULL,
	.concat = s_concat,
	.slice = s_slice,
	.upsample2x = s_upsample2x,
	.avgpool2x = s_avgpool2x,
	.to_tokens = s_to_tokens,
	.from_tokens = s_from_tokens,
	.attention_causal = s_attention_causal,
	.reshape = s_reshape,
};

int cdm_nn_secure_new(cdm_nn **out, cdm_mpc *m, enum cdm_suite suite, struct cdm_err *err)
{
	*out = NULL;
	cdm_nn *nn = cdm_zalloc(1, sizeof *nn, err);
	struct sec_ctx *c = cdm_zalloc(1, sizeof *c, err);
	if (!nn || !c) {
		cdm_free(nn);
		cdm_free(c);
		return CDM_ENOMEM;
	}
	c->m = m;
	c->suite = suite;
	c->F = cdm_mpc_frac(m);
	c->phase = "elementwise";
	nn->ops = &secure_ops;
	nn->ctx = c;
	*out = nn;
	return 0;
}

void cdm_nn_secure_free(cdm_nn *nn)
{
	if (!nn)
		return;
	struct sec_ctx *c = nn->ctx;
	for (int g = 0; c && g < SIB_GROUPS; g++)
		sib_drop(&c->cache[g]);
	cdm_free(nn->ctx);
	cdm_free(nn);
}

int cdm_nn_secure_bind(cdm_nn *nn, cdm_share *model, struct cdm_err *err)
{
	struct sec_ctx *c = nn->ctx;
	if (model->frac_bits != c->F)
		return cdm_fail(err, CDM_EINPUT,
				"%s: encoded with %d fraction bits, the session uses %d", model->path,
				model->frac_bits, c->F);
	c->model = model;
	return 0;
}

int cdm_nn_secure_bind_public(cdm_nn *nn, cdm_st *weights, struct cdm_err *err)
{
	return cdm_nn_secure_bind_public_files(nn, &weights, 1, err);
}

int cdm_nn_secure_bind_public_files(cdm_nn *nn, cdm_st *const *files, size_t n,
				    struct cdm_err *err)
{
	struct sec_ctx *c = nn->ctx;
	if (n < 1 || n > CDM_NN_PUBLIC_FILES)
		return cdm_fail(err, CDM_EINTERNAL, "secure bind_public: %zu weight files (1..%d)",
				n, CDM_NN_PUBLIC_FILES);
	for (size_t i = 0; i < n; i++) {
		if (!files[i])
			return cdm_fail(err, CDM_EINTERNAL, "secure bind_public: no weight file");
		c->pubw[i] = files[i];
	}
	c->npubw = n;
	c->model = NULL;
	return 0;
}

int cdm_nn_secure_set_mpc(cdm_nn *nn, cdm_mpc *m, struct cdm_err *err)
{
	struct sec_ctx *c = nn->ctx;
	if (cdm_mpc_frac(m) != c->F || cdm_mpc_id(m) != cdm_mpc_id(c->m))
		return cdm_fail(err, CDM_EINTERNAL, "secure backend: session of party %d with %d "
				"fraction bits, expected party %d with %d", cdm_mpc_id(m),
				cdm_mpc_frac(m), cdm_mpc_id(c->m), c->F);
	c->m = m;
	return 0;
}

void cdm_nn_secure_set_phase(cdm_nn *nn, const char *lab)
{
	struct sec_ctx *c = nn->ctx;
	c->phase = lab ? lab : "elementwise";
}

int cdm_nn_secure_wrap(cdm_nn *nn, int ndim, const int64_t *dim, cdm_shr *s, int integer,
		       cdm_tensor **out, struct cdm_err *err)
{
	*out = NULL;
	int64_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= dim[i];
	if (ndim < 1 || ndim > CDM_NN_MAX_DIMS || (size_t)n != s->n)
		return cdm_fail(err, CDM_EINTERNAL, "secure wrap: %zu elements for a %d-d shape",
				s->n, ndim);
	CDM_TRY(new_tensor(nn->ctx, ndim, dim, 0, out, err));
	SD(*out)->s = *s;
	SD(*out)->integer = integer;
	memset(s, 0, sizeof *s);
	return 0;
}
