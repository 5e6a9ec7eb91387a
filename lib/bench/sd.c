/*
 * bench/sd: SD 1.5 blocks at real size on shares, and the projection (see
 * sd.h). The block forwards follow diffusers' modules op by op on the nn
 * table (resnet, Transformer2DModel with conv projections, down/upsampler,
 * the VAE attention, CLIP encoder layers), with random secret weights.
 */
#define _GNU_SOURCE
#include "sd.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../mpc/mpc.h"
#include "../net/net.h"
#include "../nn/nn.h"
#include "../nn/secure.h"
#include "../ring/ring.h"

enum kind {
	K_TEMB, K_CONV_IN, K_RES, K_T2D, K_DOWN, K_UP, K_CONV_OUT, /* UNet */
	K_VAE_IN, K_VRES, K_VATT, K_VUP, K_VCONV_OUT,              /* VAE decoder */
	K_CLIP_EMBED, K_CLIP_LAYER                                 /* text encoder */
};

struct blk {
	enum kind kind;
	int64_t cin, cout, s; /* channels in/out, input side (square) */
	int count;
};

#define MAX_BLK 64
#define CTX_LEN 77
#define CTX_DIM 768
#define TEMB 1280
#define VOCAB 49408

/* ---- the architecture ---------------------------------------------------------- */

static void add(struct blk *b, int *n, enum kind k, int64_t cin, int64_t cout, int64_t s)
{
	for (int i = 0; i < *n; i++)
		if (b[i].kind == k && b[i].cin == cin && b[i].cout == cout && b[i].s == s) {
			b[i].count++;
			return;
		}
	b[*n] = (struct blk){k, cin, cout, s, 1};
	(*n)++;
}

/* UNet2DConditionModel of SD 1.5 at latent side s, as diffusers builds it:
 * down blocks (CrossAttn x3, plain), mid, up blocks (plain, CrossAttn x3)
 * with skip concatenation. */
static void unet_blocks(struct blk *b, int *n, int64_t s)
{
	static const int64_t boc[4] = {320, 640, 1280, 1280};
	int64_t skip[16], ns = 0, ch = boc[0], side = s;
	add(b, n, K_TEMB, 320, TEMB, 1);
	add(b, n, K_CONV_IN, 4, ch, s);
	skip[ns++] = ch;
	for (int i = 0; i < 4; i++) {
		for (int l = 0; l < 2; l++) {
			add(b, n, K_RES, ch, boc[i], side);
			ch = boc[i];
			if (i < 3)
				add(b, n, K_T2D, ch, ch, side);
			skip[ns++] = ch;
		}
		if (i < 3) {
			add(b, n, K_DOWN, ch, ch, side);
			side /= 2;
			skip[ns++] = ch;
		}
	}
	add(b, n, K_RES, ch, ch, side);
	add(b, n, K_T2D, ch, ch, side);
	add(b, n, K_RES, ch, ch, side);
	for (int i = 0; i < 4; i++) {
		int64_t out = boc[3 - i];
		for (int l = 0; l < 3; l++) {
			add(b, n, K_RES, ch + skip[--ns], out, side);
			ch = out;
			if (i > 0)
				add(b, n, K_T2D, ch, ch, side);
		}
		if (i < 3) {
			add(b, n, K_UP, ch, ch, side);
			side *= 2;
		}
	}
	add(b, n, K_CONV_OUT, ch, 4, side);
}

/* AutoencoderKL decoder: post_quant_conv + conv_in, mid (resnet, attention,
 * resnet), up blocks of 3 resnets (512, 512, 256, 128), conv_out. */
static void vae_blocks(struct blk *b, int *n, int64_t s)
{
	static const int64_t boc[4] = {512, 512, 256, 128};
	int64_t ch = 512, side = s;
	add(b, n, K_VAE_IN, 4, ch, s);
	add(b, n, K_VRES, ch, ch, side);
	add(b, n, K_VATT, ch, ch, side);
	add(b, n, K_VRES, ch, ch, side);
	for (int i = 0; i < 4; i++) {
		for (int l = 0; l < 3; l++) {
			add(b, n, K_VRES, ch, boc[i], side);
			ch = boc[i];
		}
		if (i < 3) {
			add(b, n, K_VUP, ch, ch, side);
			side *= 2;
		}
	}
	add(b, n, K_VCONV_OUT, ch, 3, side);
}

static void clip_blocks(struct blk *b, int *n)
{
	add(b, n, K_CLIP_EMBED, VOCAB, CTX_DIM, 1);
	for (int l = 0; l < 12; l++)
		add(b, n, K_CLIP_LAYER, CTX_DIM, CTX_DIM, 1);
}

static int64_t res_params(int64_t ci, int64_t co, int temb)
{
	int64_t p = 2 * ci + co * ci * 9 + co + 2 * co + co * co * 9 + co;
	if (temb)
		p += TEMB * co + co;
	if (ci != co)
		p += co * ci + co;
	return p;
}

int64_t cdm_bench_sd_unet_params(void)
{
	struct blk b[MAX_BLK];
	int n = 0;
	int64_t p = 0;
	unet_blocks(b, &n, 64);
	for (int i = 0; i < n; i++) {
		int64_t c = b[i].cin, o = b[i].cout, q = 0;
		switch (b[i].kind) {
		case K_TEMB: q = 320 * TEMB + TEMB + TEMB * TEMB + TEMB; break;
		case K_CONV_IN: q = o * c * 9 + o; break;
		case K_RES: q = res_params(c, o, 1); break;
		case K_T2D:
			q = 2 * c + 2 * (c * c + c) + 6 * c + 3 * c * c + c * c + c + c * c +
			    2 * c * CTX_DIM + c * c + c + 8 * c * c + 8 * c + 4 * c * c + c;
			break;
		case K_DOWN: case K_UP: q = c * c * 9 + c; break;
		case K_CONV_OUT: q = 2 * c + o * c * 9 + o; break;
		default: break;
		}
		p += q * b[i].count;
	}
	return p;
}

int64_t cdm_bench_sd_vae_params(void)
{
	struct blk b[MAX_BLK];
	int n = 0;
	int64_t p = 0;
	vae_blocks(b, &n, 64);
	for (int i = 0; i < n; i++) {
		int64_t c = b[i].cin, o = b[i].cout, q = 0;
		switch (b[i].kind) {
		case K_VAE_IN: q = 4 * 4 + 4 + o * c * 9 + o; break;
		case K_VRES: q = res_params(c, o, 0); break;
		case K_VATT: q = 2 * c + 4 * (c * c + c); break;
		case K_VUP: q = c * c * 9 + c; break;
		case K_VCONV_OUT: q = 2 * c + o * c * 9 + o; break;
		default: break;
		}
		p += q * b[i].count;
	}
	return p;
}

/* ---- random secret tensors --------------------------------------------------------- */

struct party {
	cdm_nn *nn;
	int id;
	uint64_t tensors; /* tensors made so far (same sequence on every party) */
	double gen;       /* seconds spent making random tensors (not charged) */
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Component j of element k of tensor t in a valid sharing of a uniform
 * value on [-a, a]: x1 = r, x2 = 0, x0 = enc(w) - r. Every party computes
 * its own two components; costs do not depend on the values. */
static uint64_t comp(uint64_t t, uint64_t k, int j, double a, int F)
{
	uint64_t h = mix(t * 0x9e3779b97f4a7c15ULL + k * 4 + 1);
	if (j == 2)
		return 0;
	uint64_t r = mix(h + 2);
	if (j == 1)
		return r;
	double w = ((double)(h >> 11) * 0x1.0p-53 * 2 - 1) * a;
	return cdm_fxp_from_double(w, F) - r;
}

/* A new secret tensor of uniform values on [-a, a]. */
static int rnd(struct party *p, int ndim, const int64_t *dim, double a, cdm_tensor **out,
	       struct cdm_err *err)
{
	size_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= (size_t)dim[i];
	cdm_shr s = {0};
	CDM_TRY(cdm_shr_new(&s, n, err));
	uint64_t t = ++p->tensors;
	int F = CDM_FRAC_BITS_DEFAULT;
	double t0 = cdm_now();
	for (size_t k = 0; k < n; k++) {
		s.a[k] = comp(t, k, p->id, a, F);
		s.b[k] = comp(t, k, (p->id + 1) % 3, a, F);
	}
	int rc = cdm_nn_secure_wrap(p->nn, ndim, dim, &s, 0, out, err);
	cdm_shr_free(&s);
	p->gen += cdm_now() - t0;
	return rc;
}

/* Weight of fan-in `fan`: variance 1/fan. */
static int wt(struct party *p, int ndim, const int64_t *dim, int64_t fan, cdm_tensor **out,
	      struct cdm_err *err)
{
	return rnd(p, ndim, dim, sqrt(3.0 / (double)fan), out, err);
}

/* ---- block forwards ------------------------------------------------------------------- */

/* A small arena of tensors freed together at the end of a block. */
#define ARENA 512
struct arena {
	struct party *p;
	cdm_tensor *t[ARENA];
	int n;
};

/* A slot for one more tensor. ARENA is far above what any block uses (the
 * deepest, a Transformer2DModel run on 1/64 of its rows, takes ~90); past
 * it the last slot is reused, which leaks a tensor but never crashes. */
static cdm_tensor **slot(struct arena *a)
{
	if (a->n < ARENA)
		return &a->t[a->n++];
	return &a->t[ARENA - 1];
}

static void arena_free(struct arena *a)
{
	for (int i = 0; i < a->n; i++)
		cdm_nn_free(a->p->nn, a->t[i]);
	a->n = 0;
}

#define T(expr) CDM_TRY(expr)

/* conv k x k (pad k/2, stride st) with bias. */
static int conv(struct arena *a, const cdm_tensor *x, int64_t co, int k, int st, cdm_tensor **out,
		struct cdm_err *err)
{
	int64_t ci = x->dim[1], wd[4] = {co, ci, k, k}, bd[1] = {co};
	int pad[4] = {k / 2, k / 2, k / 2, k / 2};
	cdm_tensor **w = slot(a), **b = slot(a);
	T(wt(a->p, 4, wd, ci * k * k, w, err));
	T(rnd(a->p, 1, bd, 0.1, b, err));
	return cdm_nn_conv2d(a->p->nn, x, *w, *b, st, pad, out, err);
}

static int lin(struct arena *a, const cdm_tensor *x, int64_t o, int bias, cdm_tensor **out,
	       struct cdm_err *err)
{
	int64_t i = x->dim[x->ndim - 1], wd[2] = {o, i}, bd[1] = {o};
	cdm_tensor **w = slot(a), **b = bias ? slot(a) : NULL;
	T(wt(a->p, 2, wd, i, w, err));
	if (b)
		T(rnd(a->p, 1, bd, 0.1, b, err));
	return cdm_nn_linear(a->p->nn, x, *w, b ? *b : NULL, out, err);
}

/* GroupNorm(32) or LayerNorm (groups 0) with gamma ~ 1, beta ~ 0. */
static int norm(struct arena *a, const cdm_tensor *x, int groups, double eps, cdm_tensor **out,
		struct cdm_err *err)
{
	int64_t c = groups ? x->dim[1] : x->dim[x->ndim - 1], d[1] = {c};
	cdm_tensor **g = slot(a), **b = slot(a), *g1 = NULL;
	T(rnd(a->p, 1, d, 0.2, &g1, err));
	int rc = cdm_nn_scale(a->p->nn, g1, 1.0, 1.0, g, err); /* gamma = 1 + u */
	cdm_nn_free(a->p->nn, g1);
	T(rc);
	T(rnd(a->p, 1, d, 0.1, b, err));
	return groups ? cdm_nn_group_norm(a->p->nn, x, groups, eps, *g, *b, out, err)
		      : cdm_nn_layer_norm(a->p->nn, x, eps, *g, *b, out, err);
}

/* ResnetBlock2D (temb_act [B,1280] or NULL for the VAE). */
static int resnet(struct arena *a, const cdm_tensor *x, int64_t co, const cdm_tensor *temb,
		  double eps, cdm_tensor **out, struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	cdm_tensor **h = slot(a), **h2 = slot(a), **h3 = slot(a), **sc = slot(a);
	T(norm(a, x, 32, eps, h, err));
	T(cdm_nn_act(nn, *h, CDM_ACT_SILU, h2, err));
	T(conv(a, *h2, co, 3, 1, h3, err));
	if (temb) {
		cdm_tensor **tp = slot(a), **hb = slot(a);
		T(lin(a, temb, co, 1, tp, err));
		T(cdm_nn_bcast_add(nn, *h3, *tp, hb, err));
		h3 = hb;
	}
	cdm_tensor **n2 = slot(a), **s2 = slot(a), **c2 = slot(a);
	T(norm(a, *h3, 32, eps, n2, err));
	T(cdm_nn_act(nn, *n2, CDM_ACT_SILU, s2, err));
	T(conv(a, *s2, co, 3, 1, c2, err));
	if (x->dim[1] != co)
		T(conv(a, x, co, 1, 1, sc, err));
	return cdm_nn_add(nn, *c2, x->dim[1] != co ? *sc : x, out, err);
}

/* t [B,n,C] repeated 2^k times along the tokens (the strip's keys and
 * values standing for all of them; local copies). */
static int tile(struct arena *a, const cdm_tensor *t, int k, const cdm_tensor **out,
		struct cdm_err *err)
{
	*out = t;
	for (int i = 0; i < k; i++) {
		cdm_tensor **d = slot(a);
		T(cdm_nn_concat(a->p->nn, *out, *out, d, err));
		*out = *d;
	}
	return 0;
}

/* Attention with projections: q from h, k/v from kv (tiled 2^k times),
 * out projection with bias. */
static int attn(struct arena *a, const cdm_tensor *h, const cdm_tensor *kv, int tilek, int heads,
		int qkv_bias, cdm_tensor **out, struct cdm_err *err)
{
	int64_t c = h->dim[2];
	cdm_tensor **q = slot(a), **k = slot(a), **v = slot(a), **o = slot(a);
	const cdm_tensor *kt, *vt;
	T(lin(a, h, c, qkv_bias, q, err));
	T(lin(a, kv, c, qkv_bias, k, err));
	T(lin(a, kv, c, qkv_bias, v, err));
	T(tile(a, *k, tilek, &kt, err));
	T(tile(a, *v, tilek, &vt, err));
	T(cdm_nn_attention(a->p->nn, *q, kt, vt, heads, 1.0 / sqrt((double)(c / heads)), o, err));
	return lin(a, *o, c, 1, out, err);
}

/* Transformer2DModel (one BasicTransformerBlock, conv proj_in/out). */
static int t2d(struct arena *a, const cdm_tensor *x, const cdm_tensor *ctx, int tilek,
	       cdm_tensor **out, struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	int64_t c = x->dim[1], h = x->dim[2], w = x->dim[3];
	cdm_tensor **g = slot(a), **pi = slot(a), **tok = slot(a);
	T(norm(a, x, 32, 1e-6, g, err));
	T(conv(a, *g, c, 1, 1, pi, err));
	T(cdm_nn_to_tokens(nn, *pi, tok, err));
	cdm_tensor *hs = *tok;
	for (int which = 0; which < 3; which++) {
		cdm_tensor **n = slot(a), **f = slot(a), **r = slot(a);
		T(norm(a, hs, 0, 1e-5, n, err));
		if (which == 0) {
			T(attn(a, *n, *n, tilek, 8, 0, f, err));
		} else if (which == 1) {
			T(attn(a, *n, ctx, 0, 8, 0, f, err));
		} else {
			/* GEGLU: proj to 8c, value half * GELU(gate half), back to c */
			cdm_tensor **p = slot(a), **img = slot(a), **va = slot(a), **ga = slot(a);
			cdm_tensor **gg = slot(a), **m = slot(a), **mt = slot(a);
			int64_t n_tok = (*n)->dim[1];
			T(lin(a, *n, 8 * c, 1, p, err));
			T(cdm_nn_from_tokens(nn, *p, n_tok, 1, img, err));
			T(cdm_nn_slice(nn, *img, 0, 4 * c, va, err));
			T(cdm_nn_slice(nn, *img, 4 * c, 4 * c, ga, err));
			T(cdm_nn_act(nn, *ga, CDM_ACT_GELU, gg, err));
			T(cdm_nn_mul(nn, *va, *gg, m, err));
			T(cdm_nn_to_tokens(nn, *m, mt, err));
			T(lin(a, *mt, c, 1, f, err));
		}
		T(cdm_nn_add(nn, *f, hs, r, err));
		hs = *r;
	}
	cdm_tensor **im = slot(a), **po = slot(a);
	T(cdm_nn_from_tokens(nn, hs, h, w, im, err));
	T(conv(a, *im, c, 1, 1, po, err));
	return cdm_nn_add(nn, *po, x, out, err);
}

/* VAE mid-block attention: GroupNorm, one head of c, biased projections. */
static int vatt(struct arena *a, const cdm_tensor *x, int tilek, cdm_tensor **out,
		struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	cdm_tensor **g = slot(a), **tok = slot(a), **o = slot(a), **im = slot(a);
	T(norm(a, x, 32, 1e-6, g, err));
	T(cdm_nn_to_tokens(nn, *g, tok, err));
	T(attn(a, *tok, *tok, tilek, 1, 1, o, err));
	T(cdm_nn_from_tokens(nn, *o, x->dim[2], x->dim[3], im, err));
	return cdm_nn_add(nn, *im, x, out, err);
}

/* CLIP encoder layer on [B,77,768]. */
static int clip_layer(struct arena *a, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	int64_t c = x->dim[2];
	cdm_tensor **n = slot(a), **q = slot(a), **k = slot(a), **v = slot(a), **at = slot(a);
	cdm_tensor **o = slot(a), **r = slot(a), **n2 = slot(a), **f1 = slot(a), **ac = slot(a);
	cdm_tensor **f2 = slot(a);
	T(norm(a, x, 0, 1e-5, n, err));
	T(lin(a, *n, c, 1, q, err));
	T(lin(a, *n, c, 1, k, err));
	T(lin(a, *n, c, 1, v, err));
	T(cdm_nn_attention_causal(nn, *q, *k, *v, 12, 1.0 / 8.0, at, err));
	T(lin(a, *at, c, 1, o, err));
	T(cdm_nn_add(nn, *o, x, r, err));
	T(norm(a, *r, 0, 1e-5, n2, err));
	T(lin(a, *n2, 4 * c, 1, f1, err));
	T(cdm_nn_act(nn, *f1, CDM_ACT_QUICK_GELU, ac, err));
	T(lin(a, *ac, c, 1, f2, err));
	return cdm_nn_add(nn, *f2, *r, out, err);
}

/* CLIP embeddings with secret token ids (integer one-hot x table), public
 * positions, and the final LayerNorm. */
static int clip_embed(struct arena *a, int64_t B, cdm_tensor **out, struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	int64_t R = B * CTX_LEN, td[2] = {VOCAB, CTX_DIM}, pd[2] = {CTX_LEN, CTX_DIM};
	int64_t od[2] = {R, VOCAB}, d3[3] = {B, CTX_LEN, CTX_DIM}, *pos = NULL;
	cdm_tensor **tab = slot(a), **ptab = slot(a), **oh = slot(a), **po = slot(a);
	cdm_tensor **e = slot(a), **pe = slot(a), **s = slot(a), **r = slot(a);
	T(rnd(a->p, 2, td, 0.02, tab, err));
	T(rnd(a->p, 2, pd, 0.02, ptab, err));
	/* the one-hot ids: token 0 .. of each row, as an integer sharing */
	cdm_shr sh = {0};
	T(cdm_shr_new(&sh, (size_t)(R * VOCAB), err));
	for (int64_t i = 0; i < R && a->p->id != 1; i++) /* x0 = onehot, x1 = x2 = 0 */
		(a->p->id == 0 ? sh.a : sh.b)[i * VOCAB + (i * 7919) % VOCAB] = 1;
	int rc = cdm_nn_secure_wrap(nn, 2, od, &sh, 1, oh, err);
	cdm_shr_free(&sh);
	T(rc);
	if (!(pos = cdm_alloc((size_t)R, sizeof *pos, err)))
		return CDM_ENOMEM;
	for (int64_t i = 0; i < R; i++)
		pos[i] = i % CTX_LEN;
	rc = cdm_nn_onehot(nn, pos, R, CTX_LEN, po, err);
	cdm_free(pos);
	T(rc);
	T(cdm_nn_embed(nn, *oh, *tab, e, err));
	T(cdm_nn_embed(nn, *po, *ptab, pe, err));
	T(cdm_nn_add(nn, *e, *pe, s, err));
	T(cdm_nn_reshape(nn, *s, 3, d3, r, err));
	return norm(a, *r, 0, 1e-5, out, err);
}

/* ---- one block, one party ------------------------------------------------------------- */

static int64_t batch_of(const struct blk *b)
{
	return b->kind >= K_VAE_IN && b->kind <= K_VCONV_OUT ? 1 : 2;
}

/* Largest buffer of the block run on 1/2^k of its rows (elements). */
static double work(const struct blk *b, int k)
{
	double B = (double)batch_of(b), s = (double)b->s, h = s / (double)(1 << k), c = (double)b->cin;
	double o = (double)b->cout, cmax = c > o ? c : o;
	switch (b->kind) {
	case K_RES: case K_VRES: case K_CONV_IN: case K_VAE_IN: case K_CONV_OUT:
	case K_VCONV_OUT:
		return cmax * 9 * B * h * s;
	case K_DOWN: return c * 9 * B * h * s / 4;
	case K_UP: case K_VUP: return c * 9 * B * 4 * h * s;
	case K_T2D: {
		double sc = B * 8 * h * s * s * s, ff = B * h * s * 8 * c;
		return sc > ff ? sc : ff;
	}
	case K_VATT: return B * h * s * s * s > c * B * h * s ? B * h * s * s * s : c * B * h * s;
	default: return 0;
	}
}

/* The block on its inputs (x, temb, ctx as the kind needs) -> *y. */
static int body(struct arena *a, const struct blk *b, int k, const cdm_tensor *x,
		const cdm_tensor *temb, const cdm_tensor *ctx, cdm_tensor **y, struct cdm_err *err)
{
	cdm_nn *nn = a->p->nn;
	cdm_tensor **t1 = slot(a), **t2 = slot(a), **t3 = slot(a);
	switch (b->kind) {
	case K_TEMB: /* SiLU(linear_2(SiLU(linear_1(public sinusoid)))) */
		T(lin(a, x, TEMB, 1, t1, err));
		T(cdm_nn_act(nn, *t1, CDM_ACT_SILU, t2, err));
		T(lin(a, *t2, TEMB, 1, t3, err));
		return cdm_nn_act(nn, *t3, CDM_ACT_SILU, y, err);
	case K_CONV_IN: return conv(a, x, b->cout, 3, 1, y, err);
	case K_RES: return resnet(a, x, b->cout, temb, 1e-5, y, err);
	case K_VRES: return resnet(a, x, b->cout, NULL, 1e-6, y, err);
	case K_T2D: return t2d(a, x, ctx, k, y, err);
	case K_DOWN: return conv(a, x, b->cout, 3, 2, y, err);
	case K_UP: case K_VUP:
		T(cdm_nn_upsample2x(nn, x, t1, err));
		return conv(a, *t1, b->cout, 3, 1, y, err);
	case K_CONV_OUT: case K_VCONV_OUT:
		T(norm(a, x, 32, b->kind == K_CONV_OUT ? 1e-5 : 1e-6, t1, err));
		T(cdm_nn_act(nn, *t1, CDM_ACT_SILU, t2, err));
		return conv(a, *t2, b->cout, 3, 1, y, err);
	case K_VAE_IN: /* post_quant_conv 1x1, conv_in 3x3 */
		T(conv(a, x, 4, 1, 1, t1, err));
		return conv(a, *t1, b->cout, 3, 1, y, err);
	case K_VATT: return vatt(a, x, k, y, err);
	case K_CLIP_EMBED: return clip_embed(a, batch_of(b), y, err);
	case K_CLIP_LAYER: return clip_layer(a, x, y, err);
	}
	return cdm_fail(err, CDM_EINTERNAL, "sd bench: unknown block %d", (int)b->kind);
}

struct pjob {
	const struct blk *b;
	int k;
	enum cdm_suite suite;
	cdm_net *net;
	int rc;
	struct cdm_err err;
	double secs;
	uint64_t sent, rounds;
};

static int party_run(struct pjob *j, cdm_mpc *m, struct cdm_err *err)
{
	struct party p = {.id = cdm_mpc_id(m)};
	const struct blk *b = j->b;
	CDM_TRY(cdm_nn_secure_new(&p.nn, m, j->suite, err));
	struct arena a = {.p = &p};
	int64_t B = batch_of(b), xd[4] = {B, b->cin, b->s >> j->k, b->s};
	int64_t td[2] = {B, TEMB}, cd[3] = {B, CTX_LEN, CTX_DIM};
	cdm_tensor **x = slot(&a), **temb = slot(&a), **ctx = slot(&a), **y = slot(&a);
	int rc = 0;
	if (b->kind == K_TEMB) {
		double t[2] = {981, 981};
		rc = cdm_nn_timestep_embedding(p.nn, t, B, 320, 1, 0, x, err);
	} else if (b->kind == K_CLIP_LAYER) {
		rc = rnd(&p, 3, cd, 1.7, x, err);
	} else if (b->kind != K_CLIP_EMBED) {
		rc = rnd(&p, 4, xd, 1.7, x, err);
	}
	if (rc == 0 && b->kind == K_RES)
		rc = rnd(&p, 2, td, 1.7, temb, err);
	if (rc == 0 && b->kind == K_T2D)
		rc = rnd(&p, 3, cd, 1.7, ctx, err);
	struct cdm_net_stats s0, s1;
	cdm_net_get_stats(j->net, &s0);
	p.gen = 0;
	double t0 = cdm_now();
	if (rc == 0)
		rc = body(&a, b, j->k, *x, *temb, *ctx, y, err);
	j->secs = cdm_now() - t0 - p.gen;
	cdm_net_get_stats(j->net, &s1);
	j->sent = s1.bytes_sent - s0.bytes_sent;
	j->rounds = s1.rounds - s0.rounds;
	arena_free(&a);
	cdm_nn_secure_free(p.nn);
	return rc;
}

static void *party_main(void *arg)
{
	struct pjob *j = arg;
	struct cdm_mpc_opts o = {0};
	cdm_mpc *m = NULL;
	j->rc = cdm_mpc_new(&m, j->net, &o, &j->err);
	if (j->rc == 0)
		j->rc = party_run(j, m, &j->err);
	cdm_mpc_free(m);
	return NULL;
}

/* What a child reports through its pipe. */
struct child_res {
	int rc;
	char msg[256];
	double secs;
	uint64_t sent[3], rounds;
	uint64_t rss;
};

static void child(const struct blk *b, int k, enum cdm_suite suite, struct child_res *r)
{
	cdm_net *net[CDM_PARTIES] = {0};
	struct pjob j[CDM_PARTIES];
	pthread_t th[CDM_PARTIES];
	struct cdm_err err = {0};
	memset(j, 0, sizeof j);
	if ((r->rc = cdm_net_local(net, &err)) < 0) {
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
		return;
	}
	int started = 0;
	for (int i = 0; i < CDM_PARTIES; i++) {
		j[i] = (struct pjob){.b = b, .k = k, .suite = suite, .net = net[i]};
		if (pthread_create(&th[i], NULL, party_main, &j[i]) == 0)
			started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	r->rc = started == CDM_PARTIES ? 0 : CDM_EINTERNAL;
	for (int i = 0; i < CDM_PARTIES; i++) {
		if (j[i].rc < 0 && r->rc == 0) {
			r->rc = j[i].rc;
			snprintf(r->msg, sizeof r->msg, "party %d: %s", i, j[i].err.msg);
		}
		r->secs = j[i].secs > r->secs ? j[i].secs : r->secs;
		r->sent[i] = j[i].sent;
		r->rounds = j[i].rounds > r->rounds ? j[i].rounds : r->rounds;
		cdm_net_free(net[i]);
	}
	r->rss = cdm_peak_rss();
}

/* Run the block in a forked child (its own peak RSS, crash isolation). */
static int run_forked(const struct blk *b, int k, enum cdm_suite suite, struct child_res *r,
		      struct cdm_err *err)
{
	int fd[2];
	memset(r, 0, sizeof *r);
	if (pipe(fd) < 0)
		return cdm_fail(err, CDM_EIO, "sd bench: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]), close(fd[1]);
		return cdm_fail(err, CDM_EIO, "sd bench: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(fd[0]);
		child(b, k, suite, r);
		ssize_t w = write(fd[1], r, sizeof *r);
		_exit(w == (ssize_t)sizeof *r ? 0 : 1);
	}
	close(fd[1]);
	size_t got = 0;
	while (got < sizeof *r) {
		ssize_t n = read(fd[0], (char *)r + got, sizeof *r - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof *r)
		return cdm_fail(err, CDM_EINTERNAL, "sd bench: the run of a block died (%s %d)",
				WIFSIGNALED(st) ? "signal" : "status",
				WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	if (r->rc < 0)
		return cdm_fail(err, r->rc, "sd bench: %s", r->msg);
	return 0;
}

/* ---- the estimate ------------------------------------------------------------------------ */

static const double net_bps[3] = {0, 1e9, 100e6};  /* loopback: not projected */
static const double net_rtt[3] = {0, 0.2e-3, 20e-3};

static const char *kind_name(enum kind k)
{
	static const char *const n[] = {
		[K_TEMB] = "time embedding", [K_CONV_IN] = "conv_in", [K_RES] = "resnet",
		[K_T2D] = "transformer", [K_DOWN] = "downsample", [K_UP] = "upsample",
		[K_CONV_OUT] = "norm+conv_out", [K_VAE_IN] = "post_quant+conv_in",
		[K_VRES] = "resnet", [K_VATT] = "attention", [K_VUP] = "upsample",
		[K_VCONV_OUT] = "norm+conv_out", [K_CLIP_EMBED] = "embed(ids)+final_ln",
		[K_CLIP_LAYER] = "encoder layer"};
	return n[k];
}

static void block_name(const struct blk *b, char *buf, size_t size)
{
	const char *n = kind_name(b->kind);
	if (b->kind == K_CLIP_EMBED || b->kind == K_CLIP_LAYER)
		snprintf(buf, size, "%s 77x768", n);
	else if (b->kind == K_TEMB)
		snprintf(buf, size, "%s 320->1280", n);
	else if (b->cin != b->cout)
		snprintf(buf, size, "%s %lld->%lld %lldx%lld", n, (long long)b->cin,
			 (long long)b->cout, (long long)b->s, (long long)b->s);
	else
		snprintf(buf, size, "%s %lld %lldx%lld", n, (long long)b->cin, (long long)b->s,
			 (long long)b->s);
}

/* Smallest k with the block's largest buffer within budget (rows >= 2). */
static int pick_shift(const struct blk *b, int64_t budget)
{
	int k = 0;
	if (b->kind == K_TEMB || b->kind == K_CLIP_EMBED || b->kind == K_CLIP_LAYER)
		return 0;
	while (work(b, k) > (double)budget && (b->s >> (k + 1)) >= 2)
		k++;
	return k;
}

static int measure(const struct cdm_bench_sd_opts *o, const struct blk *b, int res,
		   const char *part, struct cdm_bench_sd_block *out, struct cdm_err *err)
{
	struct child_res r;
	int k = pick_shift(b, o->max_elems ? o->max_elems : ((int64_t)1 << 21));
	memset(out, 0, sizeof *out);
	block_name(b, out->name, sizeof out->name);
	snprintf(out->part, sizeof out->part, "%s", part);
	out->resolution = res, out->count = b->count, out->batch = (int)batch_of(b), out->shift = k;
	if (o->progress) {
		char line[160];
		snprintf(line, sizeof line, "sd: %s %s (res %d, 1/%d of the rows) ...", part,
			 out->name, res, 1 << k);
		o->progress(o->progress_arg, line);
	}
	CDM_TRY(run_forked(b, k, o->suite, &r, err));
	double sc = (double)(1 << k);
	uint64_t mx = 0, tot = 0;
	for (int i = 0; i < 3; i++) {
		tot += r.sent[i];
		mx = r.sent[i] > mx ? r.sent[i] : mx;
	}
	out->seconds = r.secs * sc;
	out->bytes = (double)tot * sc;
	out->bytes_party = (double)mx * sc;
	out->rounds = r.rounds;
	out->peak_rss = r.rss;
	return 0;
}

static void proj_add(struct cdm_bench_sd_proj *p, const struct cdm_bench_sd_block *b, double mult)
{
	p->seconds += b->seconds * mult;
	p->bytes += b->bytes * mult;
	p->bytes_party += b->bytes_party * mult;
	p->rounds += (double)b->rounds * mult;
}

static void proj_net(struct cdm_bench_sd_proj *p)
{
	p->t_net[CDM_BENCH_LOOPBACK] = p->seconds;
	for (int n = CDM_BENCH_LAN; n <= CDM_BENCH_WAN; n++)
		p->t_net[n] = p->seconds + p->bytes_party * 8 / net_bps[n] + p->rounds * net_rtt[n];
}

static void project(struct cdm_bench_sd_result *r, int res)
{
	struct cdm_bench_sd_proj u = {0}, v = {0}, t = {0}, u50, img;
	for (int i = 0; i < r->nblocks; i++) {
		const struct cdm_bench_sd_block *b = &r->blocks[i];
		if (!strcmp(b->part, "clip"))
			proj_add(&t, b, b->count);
		else if (b->resolution == res)
			proj_add(!strcmp(b->part, "unet") ? &u : &v, b, b->count);
	}
	u50 = u;
	u50.seconds *= 50, u50.bytes *= 50, u50.bytes_party *= 50, u50.rounds *= 50;
	img = u50;
	img.seconds += v.seconds + t.seconds, img.bytes += v.bytes + t.bytes;
	img.bytes_party += v.bytes_party + t.bytes_party, img.rounds += v.rounds + t.rounds;
	struct cdm_bench_sd_proj *all[5] = {&u, &u50, &v, &t, &img};
	static const char *const what[5] = {"unet_step", "unet_50", "vae_decode", "text_encoder",
					    "image"};
	for (int i = 0; i < 5 && r->nproj < 10; i++) {
		all[i]->resolution = res;
		snprintf(all[i]->what, sizeof all[i]->what, "%s", what[i]);
		proj_net(all[i]);
		r->proj[r->nproj++] = *all[i];
	}
}

int cdm_bench_sd_estimate(const struct cdm_bench_sd_opts *o, struct cdm_bench_sd_result **out,
			  struct cdm_err *err)
{
	*out = NULL;
	if (o->resolution != 0 && o->resolution != 256 && o->resolution != 512)
		return cdm_fail(err, CDM_EINPUT, "--resolution %d: expected 256 or 512", o->resolution);
	if (o->max_elems < 0 || (o->max_elems > 0 && o->max_elems < 4096))
		return cdm_fail(err, CDM_EINPUT, "--max-elems %lld: expected >= 4096",
				(long long)o->max_elems);
	struct cdm_bench_sd_result *r = cdm_zalloc(1, sizeof *r, err);
	if (!r)
		return CDM_ENOMEM;
	r->suite = o->suite, r->only_net = o->only_net;
	r->max_elems = o->max_elems ? o->max_elems : ((int64_t)1 << 21);
	int res[2] = {256, 512}, nres = 2, rc = 0;
	if (o->resolution)
		res[0] = o->resolution, nres = 1;
	if (!(r->blocks = cdm_zalloc(3 * MAX_BLK, sizeof *r->blocks, err))) {
		cdm_free(r);
		return CDM_ENOMEM;
	}
	struct blk b[MAX_BLK];
	int n = 0;
	clip_blocks(b, &n);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = measure(o, &b[i], 0, "clip", &r->blocks[r->nblocks++], err);
	for (int ri = 0; rc == 0 && ri < nres; ri++) {
		for (int part = 0; rc == 0 && part < 2; part++) {
			n = 0;
			if (part == 0)
				unet_blocks(b, &n, res[ri] / 8);
			else
				vae_blocks(b, &n, res[ri] / 8);
			for (int i = 0; rc == 0 && i < n; i++) {
				if (o->stop && *o->stop)
					rc = cdm_fail(err, CDM_ENET, "interrupted");
				else
					rc = measure(o, &b[i], res[ri], part ? "vae" : "unet",
						     &r->blocks[r->nblocks++], err);
			}
		}
		if (rc == 0)
			project(r, res[ri]);
	}
	if (rc < 0) {
		cdm_bench_sd_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void cdm_bench_sd_free(struct cdm_bench_sd_result *r)
{
	if (!r)
		return;
	cdm_free(r->blocks);
	cdm_free(r);
}

/* ---- rendering --------------------------------------------------------------------------- */

/* Close the memstream (which sets *bufp) and hand out a cdm_alloc'ed copy. */
static int finish(FILE *f, char **bufp, char **out, struct cdm_err *err)
{
	int bad = fclose(f) != 0;
	char *buf = *bufp;
	if (bad || !buf) {
		free(buf);
		return cdm_fail(err, CDM_ENOMEM, "sd bench: rendering failed");
	}
	*out = cdm_alloc(strlen(buf) + 1, 1, err);
	if (*out)
		memcpy(*out, buf, strlen(buf) + 1);
	free(buf);
	return *out ? 0 : CDM_ENOMEM;
}

static const char *net_label(int n)
{
	static const char *const l[3] = {"loopback", "lan", "wan"};
	return l[n];
}

int cdm_bench_sd_table(const struct cdm_bench_sd_result *r, char **out, struct cdm_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return cdm_fail(err, CDM_ENOMEM, "sd bench: open_memstream failed");
	fprintf(f, "SD 1.5 secure blocks (suite %s, three parties in threads, loopback; batch 2 for "
		   "UNet/CLIP, 1 for the VAE;\nblocks over %lld elements run on 1/2^k of their rows, "
		   "seconds and bytes scaled by 2^k, rounds as measured)\n",
		cdm_suite_name(r->suite), (long long)r->max_elems);
	fprintf(f, "%-5s %-4s %-30s %5s %5s %9s %10s %10s %7s %8s\n", "part", "res", "block",
		"count", "frac", "seconds", "MB total", "MB party", "rounds", "RSS MB");
	for (int i = 0; i < r->nblocks; i++) {
		const struct cdm_bench_sd_block *b = &r->blocks[i];
		char frac[16];
		snprintf(frac, sizeof frac, "1/%d", 1 << b->shift);
		fprintf(f, "%-5s %-4d %-30s %5d %5s %9.3f %10.1f %10.1f %7llu %8.0f\n", b->part,
			b->resolution, b->name, b->count, frac, b->seconds, b->bytes / 1e6,
			b->bytes_party / 1e6, (unsigned long long)b->rounds, b->peak_rss / 1e6);
	}
	fprintf(f, "\nProjection (time = loopback compute + busiest party's bytes / bandwidth + "
		   "rounds x RTT;\nLAN 1 Gbit/s 0.2 ms, WAN 100 Mbit/s 20 ms; unet_50 = 50 DDIM steps "
		   "with guidance, batch 2)\n");
	fprintf(f, "%-4s %-13s %10s %10s %10s", "res", "what", "GB total", "GB party", "rounds");
	for (int n = 0; n < 3; n++)
		if (!r->only_net || r->only_net == n + 1)
			fprintf(f, " %11s", n == 0 ? "s loopback" : n == 1 ? "s lan" : "s wan");
	fputc('\n', f);
	for (int i = 0; i < r->nproj; i++) {
		const struct cdm_bench_sd_proj *p = &r->proj[i];
		fprintf(f, "%-4d %-13s %10.2f %10.2f %10.0f", p->resolution, p->what, p->bytes / 1e9,
			p->bytes_party / 1e9, p->rounds);
		for (int n = 0; n < 3; n++)
			if (!r->only_net || r->only_net == n + 1)
				fprintf(f, " %11.1f", p->t_net[n]);
		fputc('\n', f);
	}
	return finish(f, &buf, out, err);
}

int cdm_bench_sd_json(const struct cdm_bench_sd_result *r, char **out, struct cdm_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return cdm_fail(err, CDM_ENOMEM, "sd bench: open_memstream failed");
	fprintf(f, "{\"model\": \"stable-diffusion-v1-5\", \"suite\": \"%s\", \"max_elems\": %lld, "
		   "\"links\": {\"lan\": {\"mbit\": 1000, \"rtt_ms\": 0.2}, \"wan\": {\"mbit\": 100, "
		   "\"rtt_ms\": 20}},\n \"blocks\": [",
		cdm_suite_name(r->suite), (long long)r->max_elems);
	for (int i = 0; i < r->nblocks; i++) {
		const struct cdm_bench_sd_block *b = &r->blocks[i];
		fprintf(f, "%s\n  {\"part\": \"%s\", \"resolution\": %d, \"block\": \"%s\", "
			   "\"count\": %d, \"batch\": %d, \"fraction\": %.6g, \"seconds\": %.6g, "
			   "\"bytes_sent\": %.0f, \"bytes_sent_max_party\": %.0f, \"rounds\": %llu, "
			   "\"peak_rss_bytes\": %llu}",
			i ? "," : "", b->part, b->resolution, b->name, b->count, b->batch,
			1.0 / (double)(1 << b->shift), b->seconds, b->bytes, b->bytes_party,
			(unsigned long long)b->rounds, (unsigned long long)b->peak_rss);
	}
	fprintf(f, "],\n \"projection\": [");
	for (int i = 0; i < r->nproj; i++) {
		const struct cdm_bench_sd_proj *p = &r->proj[i];
		fprintf(f, "%s\n  {\"resolution\": %d, \"what\": \"%s\", \"bytes_sent\": %.0f, "
			   "\"bytes_sent_max_party\": %.0f, \"rounds\": %.0f, \"seconds\": {",
			i ? "," : "", p->resolution, p->what, p->bytes, p->bytes_party, p->rounds);
		int first = 1;
		for (int n = 0; n < 3; n++)
			if (!r->only_net || r->only_net == n + 1) {
				fprintf(f, "%s\"%s\": %.6g", first ? "" : ", ", net_label(n), p->t_net[n]);
				first = 0;
			}
		fprintf(f, "}}");
	}
	fprintf(f, "]}\n");
	return finish(f, &buf, out, err);
}
