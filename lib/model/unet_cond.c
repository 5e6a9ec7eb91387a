/*
 * model/unet_cond: UNet2DConditionModel over the nn op table (see
 * unet_cond.h). Structure as diffusers' unet_2d_condition.py,
 * unet_2d_blocks.py, transformer_2d.py and attention.py, described in
 * reference/diffusers.md §4.1-4.2.
 */
#include "unet_cond.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blocks.h"

/* diffusers Attention inside BasicTransformerBlock: to_q/k/v without bias,
 * to_out.0 with bias; no norm, no residual. */
struct xattn {
	int64_t heads, dh;
	struct cdm_wb q, k, v, o;
};

/* Transformer2DModel with its single BasicTransformerBlock. */
struct t2d {
	int64_t c, inner, groups;
	int linear; /* use_linear_projection */
	struct cdm_wb norm, proj_in, proj_out;
	struct cdm_wb norm1, norm2, norm3, ff_in, ff_out; /* ff_in [8 inner, inner] */
	struct xattn a1, a2;
};

struct cblock {
	int nres;
	struct cdm_blk_resnet *res; /* [nres] */
	struct t2d *att;            /* [nres] or NULL */
	int has_samp;
	struct cdm_wb samp; /* downsamplers.0.conv / upsamplers.0.conv */
};

struct cdm_unet_cond {
	cdm_nn *nn;
	struct cdm_unet_cond_config cfg;
	struct cdm_blk b;
	struct cdm_blk_resnet_spec rspec; /* of every resnet outside the mid block */
	int64_t ctx_dim; /* 0 when there is no cross-attention */
	struct cdm_wb conv_in, lin1, lin2, norm_out, conv_out;
	struct cblock down[CDM_UNET_MAX_BLOCKS], up[CDM_UNET_MAX_BLOCKS];
	struct cdm_blk_resnet mid_res[2];
	struct t2d mid_att;
};

/* ---- binding -------------------------------------------------------------- */

static int bind_xattn(cdm_unet_cond *u, struct xattn *a, const char *prefix, int64_t inner,
		      int64_t heads, int64_t kv_dim, struct cdm_err *err)
{
	struct cdm_blk *b = &u->b;
	a->heads = heads;
	a->dh = inner / heads;
	CDM_TRY(cdm_blk_bind_wb(b, &a->q, prefix, "to_q", inner, inner, 0, 0, 0, err));
	CDM_TRY(cdm_blk_bind_wb(b, &a->k, prefix, "to_k", inner, kv_dim, 0, 0, 0, err));
	CDM_TRY(cdm_blk_bind_wb(b, &a->v, prefix, "to_v", inner, kv_dim, 0, 0, 0, err));
	return cdm_blk_bind_wb(b, &a->o, prefix, "to_out.0", inner, inner, 0, 0, 1, err);
}

static int bind_t2d(cdm_unet_cond *u, struct t2d *t, const char *prefix, int64_t c,
		    int64_t heads, int64_t xdim, struct cdm_err *err)
{
	struct cdm_blk *b = &u->b;
	char p[320];
	if (heads < 1 || heads > c)
		return cdm_fail(err, CDM_EINPUT, "config: %lld attention heads for the %lld "
				"channels of %s", (long long)heads, (long long)c, prefix);
	t->c = c;
	t->inner = heads * (c / heads);
	t->groups = u->cfg.norm_num_groups;
	t->linear = u->cfg.use_linear_projection;
	int64_t in = t->inner;
	CDM_TRY(cdm_blk_check_groups(t->groups, c, prefix, "norm", err));
	CDM_TRY(cdm_blk_bind_wb(b, &t->norm, prefix, "norm", c, 0, 0, 0, 1, err));
	if (t->linear) {
		CDM_TRY(cdm_blk_bind_wb(b, &t->proj_in, prefix, "proj_in", in, c, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &t->proj_out, prefix, "proj_out", c, in, 0, 0, 1, err));
	} else {
		CDM_TRY(cdm_blk_bind_wb(b, &t->proj_in, prefix, "proj_in", in, c, 1, 1, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &t->proj_out, prefix, "proj_out", c, in, 1, 1, 1, err));
	}
	snprintf(p, sizeof p, "%s.transformer_blocks.0", prefix);
	CDM_TRY(cdm_blk_bind_wb(b, &t->norm1, p, "norm1", in, 0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &t->norm2, p, "norm2", in, 0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &t->norm3, p, "norm3", in, 0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &t->ff_in, p, "ff.net.0.proj", 8 * in, in, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &t->ff_out, p, "ff.net.2", in, 4 * in, 0, 0, 1, err));
	char a[352];
	snprintf(a, sizeof a, "%s.attn1", p);
	CDM_TRY(bind_xattn(u, &t->a1, a, in, heads, in, err));
	snprintf(a, sizeof a, "%s.attn2", p);
	CDM_TRY(bind_xattn(u, &t->a2, a, in, heads, xdim, err));
	/* one context must fit every cross-attention */
	if (u->ctx_dim && u->ctx_dim != xdim)
		return cdm_fail(err, CDM_EINPUT, "config: cross_attention_dim differs between "
				"blocks (%lld and %lld): not supported", (long long)u->ctx_dim,
				(long long)xdim);
	u->ctx_dim = xdim;
	return 0;
}

static int block_alloc(struct cblock *b, int nres, int attn, struct cdm_err *err)
{
	b->nres = nres;
	if (!(b->res = cdm_zalloc((size_t)nres, sizeof *b->res, err)))
		return CDM_ENOMEM;
	if (attn && !(b->att = cdm_zalloc((size_t)nres, sizeof *b->att, err)))
		return CDM_ENOMEM;
	return 0;
}

static int bind_down(cdm_unet_cond *u, int i, struct cdm_err *err)
{
	const struct cdm_unet_cond_config *c = &u->cfg;
	struct cblock *b = &u->down[i];
	int64_t cin = i ? c->boc[i - 1] : c->boc[0], cout = c->boc[i];
	char p[256];
	CDM_TRY(block_alloc(b, (int)c->layers_per_block, c->down_cross[i], err));
	for (int j = 0; j < b->nres; j++) {
		snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
		CDM_TRY(cdm_blk_resnet_bind(&u->b, &b->res[j], p, j ? cout : cin, cout, &u->rspec,
					    err));
		if (b->att) {
			snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
			CDM_TRY(bind_t2d(u, &b->att[j], p, cout, c->heads[i], c->cross_dim[i], err));
		}
	}
	if (i == c->n_blocks - 1)
		return 0;
	b->has_samp = 1;
	snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
	return cdm_blk_bind_wb(&u->b, &b->samp, p, "conv", cout, cout, 3, 3, 1, err);
}

static int bind_up(cdm_unet_cond *u, int i, struct cdm_err *err)
{
	const struct cdm_unet_cond_config *c = &u->cfg;
	struct cblock *b = &u->up[i];
	int n = c->n_blocks, r = n - 1 - i; /* per-block lists are reversed for up blocks */
	int64_t out = c->boc[r];
	int64_t prev = c->boc[n - 1 - (i ? i - 1 : 0)];
	int64_t in = c->boc[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
	int L = (int)c->layers_per_block;
	char p[256];
	CDM_TRY(block_alloc(b, L + 1, c->up_cross[i], err));
	for (int j = 0; j <= L; j++) {
		int64_t skip = j == L ? in : out, rin = j ? out : prev;
		snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
		CDM_TRY(cdm_blk_resnet_bind(&u->b, &b->res[j], p, rin + skip, out, &u->rspec,
					    err));
		if (b->att) {
			snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
			CDM_TRY(bind_t2d(u, &b->att[j], p, out, c->heads[r], c->cross_dim[r], err));
		}
	}
	if (i == n - 1)
		return 0;
	b->has_samp = 1;
	snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
	return cdm_blk_bind_wb(&u->b, &b->samp, p, "conv", out, out, 3, 3, 1, err);
}

static int bind_all(cdm_unet_cond *u, struct cdm_err *err)
{
	const struct cdm_unet_cond_config *c = &u->cfg;
	struct cdm_blk *b = &u->b;
	int64_t c0 = c->boc[0], td = c->temb_dim, n = c->n_blocks;
	CDM_TRY(cdm_blk_bind_wb(b, &u->conv_in, "conv_in", "", c0, c->in_channels, 3, 3, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->lin1, "time_embedding", "linear_1", td, c0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->lin2, "time_embedding", "linear_2", td, td, 0, 0, 1, err));
	for (int i = 0; i < n; i++)
		CDM_TRY(bind_down(u, i, err));
	if (c->has_mid) {
		int64_t cm = c->boc[n - 1];
		struct cdm_blk_resnet_spec mid = u->rspec;
		mid.osf = c->mid_block_scale_factor;
		CDM_TRY(cdm_blk_resnet_bind(b, &u->mid_res[0], "mid_block.resnets.0", cm, cm, &mid,
					    err));
		CDM_TRY(bind_t2d(u, &u->mid_att, "mid_block.attentions.0", cm, c->heads[n - 1],
				 c->cross_dim[n - 1], err));
		CDM_TRY(cdm_blk_resnet_bind(b, &u->mid_res[1], "mid_block.resnets.1", cm, cm, &mid,
					    err));
	}
	for (int i = 0; i < n; i++)
		CDM_TRY(bind_up(u, i, err));
	CDM_TRY(cdm_blk_check_groups(c->norm_num_groups, c0, "conv_norm_out", "", err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->norm_out, "conv_norm_out", "", c0, 0, 0, 0, 1, err));
	return cdm_blk_bind_wb(b, &u->conv_out, "conv_out", "", c->out_channels, c0, 3, 3, 1, err);
}

int cdm_unet_cond_new(cdm_unet_cond **out, cdm_nn *nn, const struct cdm_unet_cond_config *cfg,
		      struct cdm_err *err)
{
	*out = NULL;
	cdm_unet_cond *u = cdm_zalloc(1, sizeof *u, err);
	if (!u)
		return CDM_ENOMEM;
	u->nn = nn;
	u->b.nn = nn;
	u->cfg = *cfg;
	u->rspec = (struct cdm_blk_resnet_spec){.temb_dim = cfg->temb_dim,
						.groups = cfg->norm_num_groups,
						.eps = cfg->norm_eps,
						.osf = 1.0,
						.act = CDM_ACT_SILU};
	int rc = bind_all(u, err);
	if (rc < 0) {
		cdm_unet_cond_free(u);
		return rc;
	}
	*out = u;
	return 0;
}

int cdm_unet_cond_load(cdm_unet_cond **out, cdm_nn *nn, const char *dir,
		       struct cdm_model_paths *paths, struct cdm_err *err)
{
	struct cdm_model_paths p;
	struct cdm_unet_cond_config cfg;
	*out = NULL;
	CDM_TRY(cdm_model_locate(&p, dir, err));
	CDM_TRY(cdm_unet_cond_config_load(&cfg, p.config, err));
	CDM_TRY(cdm_nn_load_weights(nn, p.weights, err));
	if (paths)
		*paths = p;
	return cdm_unet_cond_new(out, nn, &cfg, err);
}

static void free_xattn(cdm_nn *nn, struct xattn *a)
{
	cdm_blk_free_wb(nn, &a->q);
	cdm_blk_free_wb(nn, &a->k);
	cdm_blk_free_wb(nn, &a->v);
	cdm_blk_free_wb(nn, &a->o);
}

static void free_t2d(cdm_nn *nn, struct t2d *t)
{
	struct cdm_wb *wbs[] = {&t->norm, &t->proj_in, &t->proj_out, &t->norm1, &t->norm2,
				&t->norm3, &t->ff_in, &t->ff_out};
	for (size_t i = 0; i < sizeof wbs / sizeof *wbs; i++)
		cdm_blk_free_wb(nn, wbs[i]);
	free_xattn(nn, &t->a1);
	free_xattn(nn, &t->a2);
}

static void free_block(cdm_nn *nn, struct cblock *b)
{
	for (int j = 0; b->res && j < b->nres; j++) {
		cdm_blk_resnet_free(nn, &b->res[j]);
		if (b->att)
			free_t2d(nn, &b->att[j]);
	}
	cdm_blk_free_wb(nn, &b->samp);
	cdm_free(b->res);
	cdm_free(b->att);
}

void cdm_unet_cond_free(cdm_unet_cond *u)
{
	if (!u)
		return;
	cdm_nn *nn = u->nn;
	cdm_blk_free_wb(nn, &u->conv_in);
	cdm_blk_free_wb(nn, &u->lin1);
	cdm_blk_free_wb(nn, &u->lin2);
	cdm_blk_free_wb(nn, &u->norm_out);
	cdm_blk_free_wb(nn, &u->conv_out);
	for (int i = 0; i < CDM_UNET_MAX_BLOCKS; i++) {
		free_block(nn, &u->down[i]);
		free_block(nn, &u->up[i]);
	}
	cdm_blk_resnet_free(nn, &u->mid_res[0]);
	cdm_blk_resnet_free(nn, &u->mid_res[1]);
	free_t2d(nn, &u->mid_att);
	cdm_free(u);
}

const struct cdm_unet_cond_config *cdm_unet_cond_config(const cdm_unet_cond *u)
{
	return &u->cfg;
}

int64_t cdm_unet_cond_params(const cdm_unet_cond *u)
{
	return u->b.params;
}

int64_t cdm_unet_cond_ctx_dim(const cdm_unet_cond *u)
{
	return u->ctx_dim;
}

/* ---- forward -------------------------------------------------------------- */

/* out = to_out(attention(to_q(h), to_k(kv), to_v(kv))), tokens [B,N,inner]. */
static int xattn_fwd(cdm_nn *nn, const struct xattn *a, const cdm_tensor *h,
		     const cdm_tensor *kv, cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *q = NULL, *k = NULL, *v = NULL, *o = NULL;
	int rc;
	if ((rc = cdm_nn_linear(nn, h, a->q.w, NULL, &q, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, kv, a->k.w, NULL, &k, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, kv, a->v.w, NULL, &v, err)) < 0 ||
	    (rc = cdm_nn_attention(nn, q, k, v, (int)a->heads, 1.0 / sqrt((double)a->dh), &o,
				   err)) < 0)
		goto done;
	rc = cdm_nn_linear(nn, o, a->o.w, a->o.b, out, err);
done:
	cdm_nn_free(nn, q);
	cdm_nn_free(nn, k);
	cdm_nn_free(nn, v);
	cdm_nn_free(nn, o);
	return rc;
}

/* GEGLU feed-forward on tokens [B,N,inner]: [a | g] = proj(h); out =
 * net.2(a * GELU(g)). The halves are split along channels after viewing the
 * tokens as an image [B,8inner,N,1], so only ops every backend has are used. */
static int ff_fwd(cdm_nn *nn, const struct t2d *t, const cdm_tensor *h, cdm_tensor **out,
		  struct cdm_err *err)
{
	cdm_tensor *p = NULL, *img = NULL, *a = NULL, *g = NULL, *n = NULL, *tok = NULL;
	int64_t half = 4 * t->inner, len = h->dim[1];
	int rc;
	if ((rc = cdm_nn_linear(nn, h, t->ff_in.w, t->ff_in.b, &p, err)) < 0 ||
	    (rc = cdm_nn_from_tokens(nn, p, len, 1, &img, err)) < 0 ||
	    (rc = cdm_nn_slice(nn, img, 0, half, &a, err)) < 0 ||
	    (rc = cdm_nn_slice(nn, img, half, half, &g, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &g, cdm_nn_act(nn, g, CDM_ACT_GELU, &n, err), &n)) < 0 ||
	    (rc = cdm_blk_replace(nn, &g, cdm_nn_mul(nn, a, g, &n, err), &n)) < 0 ||
	    (rc = cdm_nn_to_tokens(nn, g, &tok, err)) < 0)
		goto done;
	rc = cdm_nn_linear(nn, tok, t->ff_out.w, t->ff_out.b, out, err);
done:
	cdm_nn_free(nn, p);
	cdm_nn_free(nn, img);
	cdm_nn_free(nn, a);
	cdm_nn_free(nn, g);
	cdm_nn_free(nn, n);
	cdm_nn_free(nn, tok);
	return rc;
}

/* h += f(LN(h)) for one residual branch of the transformer block; which:
 * 0 self-attention, 1 cross-attention on ctx, 2 feed-forward. */
static int branch(cdm_nn *nn, const struct t2d *t, int which, cdm_tensor **h,
		  const cdm_tensor *ctx, struct cdm_err *err)
{
	const struct cdm_wb *ln = which == 0 ? &t->norm1 : which == 1 ? &t->norm2 : &t->norm3;
	cdm_tensor *n = NULL, *f = NULL, *s = NULL;
	int rc;
	if ((rc = cdm_nn_layer_norm(nn, *h, 1e-5, ln->w, ln->b, &n, err)) < 0)
		goto done;
	rc = which == 0 ? xattn_fwd(nn, &t->a1, n, n, &f, err)
	     : which == 1 ? xattn_fwd(nn, &t->a2, n, ctx, &f, err)
			  : ff_fwd(nn, t, n, &f, err);
	if (rc < 0 || (rc = cdm_nn_add(nn, f, *h, &s, err)) < 0)
		goto done;
	rc = cdm_blk_replace(nn, h, 0, &s);
done:
	cdm_nn_free(nn, n);
	cdm_nn_free(nn, f);
	return rc;
}

static int t2d_fwd(cdm_nn *nn, const struct t2d *t, const cdm_tensor *x, const cdm_tensor *ctx,
		   cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *h = NULL, *n = NULL;
	int64_t hh = x->dim[2], ww = x->dim[3];
	int rc;
	if ((rc = cdm_nn_group_norm(nn, x, (int)t->groups, 1e-6, t->norm.w, t->norm.b, &h,
				    err)) < 0)
		goto done;
	if (t->linear) {
		if ((rc = cdm_blk_replace(nn, &h, cdm_nn_to_tokens(nn, h, &n, err), &n)) < 0 ||
		    (rc = cdm_blk_replace(nn, &h, cdm_nn_linear(nn, h, t->proj_in.w, t->proj_in.b,
								&n, err), &n)) < 0)
			goto done;
	} else if ((rc = cdm_blk_replace(nn, &h, cdm_blk_conv(nn, h, &t->proj_in, 1, 0, 0, &n, err),
					 &n)) < 0 ||
		   (rc = cdm_blk_replace(nn, &h, cdm_nn_to_tokens(nn, h, &n, err), &n)) < 0) {
		goto done;
	}
	for (int which = 0; which < 3; which++)
		if ((rc = branch(nn, t, which, &h, ctx, err)) < 0)
			goto done;
	if (t->linear) {
		if ((rc = cdm_blk_replace(nn, &h, cdm_nn_linear(nn, h, t->proj_out.w, t->proj_out.b,
								&n, err), &n)) < 0 ||
		    (rc = cdm_blk_replace(nn, &h, cdm_nn_from_tokens(nn, h, hh, ww, &n, err), &n)) < 0)
			goto done;
	} else if ((rc = cdm_blk_replace(nn, &h, cdm_nn_from_tokens(nn, h, hh, ww, &n, err),
					 &n)) < 0 ||
		   (rc = cdm_blk_replace(nn, &h, cdm_blk_conv(nn, h, &t->proj_out, 1, 0, 0, &n, err),
					 &n)) < 0) {
		goto done;
	}
	rc = cdm_nn_add(nn, h, x, out, err);
done:
	cdm_nn_free(nn, h);
	cdm_nn_free(nn, n);
	return rc;
}

/* SiLU(linear_2(SiLU(linear_1(sinusoid(t))))): the time embedding as every
 * resnet consumes it (act_fn is SiLU; other activations are refused). */
static int time_embed(cdm_unet_cond *u, const double *t, int64_t batch, cdm_tensor **out,
		      struct cdm_err *err)
{
	cdm_nn *nn = u->nn;
	const struct cdm_unet_cond_config *c = &u->cfg;
	cdm_tensor *e = NULL, *n = NULL;
	int rc;
	if ((rc = cdm_blk_time_embed(nn, &u->lin1, &u->lin2, t, batch, c->boc[0],
				     c->flip_sin_to_cos, c->freq_shift, &e, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &e, cdm_nn_act(nn, e, CDM_ACT_SILU, &n, err), &n)) < 0) {
		cdm_nn_free(nn, e);
		return rc;
	}
	*out = e;
	return 0;
}

int cdm_unet_cond_check_input(const cdm_unet_cond *u, int ndim, const int64_t *dim,
			      int ctx_ndim, const int64_t *ctx_dim, struct cdm_err *err)
{
	const struct cdm_unet_cond_config *c = &u->cfg;
	char b[96];
	if (ndim != 4 || dim[1] != c->in_channels || dim[0] < 1)
		return cdm_fail(err, CDM_EINPUT, "x: shape %s, expected [B,%lld,H,W]",
				cdm_shape_str(b, sizeof b, ndim, dim), (long long)c->in_channels);
	for (int axis = 2; axis < 4; axis++) {
		int64_t s = dim[axis];
		for (int i = 0; i + 1 < c->n_blocks; i++) {
			int64_t d = cdm_blk_down_size(s, c->downsample_padding);
			if (d < 1 || 2 * d != s)
				return cdm_fail(err, CDM_EINPUT, "x: shape %s: size %lld does not halve "
						"evenly through %d downsamplings",
						cdm_shape_str(b, sizeof b, ndim, dim),
						(long long)dim[axis], c->n_blocks - 1);
			s = d;
		}
	}
	if (ctx_dim && u->ctx_dim &&
	    (ctx_ndim != 3 || ctx_dim[0] != dim[0] || ctx_dim[1] < 1 || ctx_dim[2] != u->ctx_dim))
		return cdm_fail(err, CDM_EINPUT, "ctx: shape %s, expected [%lld,L,%lld] "
				"(encoder_hidden_states)",
				cdm_shape_str(b, sizeof b, ctx_ndim, ctx_dim), (long long)dim[0],
				(long long)u->ctx_dim);
	return 0;
}

int cdm_unet_cond_forward(cdm_unet_cond *u, const cdm_tensor *x, const double *t,
			  const cdm_tensor *ctx, cdm_tensor **eps, struct cdm_err *err)
{
	cdm_nn *nn = u->nn;
	const struct cdm_unet_cond_config *c = &u->cfg;
	*eps = NULL;
	if (!ctx)
		return cdm_fail(err, CDM_EINPUT, "UNet2DConditionModel: a context "
				"(encoder_hidden_states) is required");
	CDM_TRY(cdm_unet_cond_check_input(u, x->ndim, x->dim, ctx->ndim, ctx->dim, err));
	enum { MAXSKIP = 1 + CDM_UNET_MAX_BLOCKS * (64 + 1) };
	cdm_tensor *skips[MAXSKIP] = {0}, *h = NULL, *n = NULL, *temb = NULL, *xin = NULL;
	int ns = 0, rc;
	/* h becomes the result of `call` (which writes n); the old h is freed
	 * unless it was pushed as a skip (the skip list then owns it). */
#define NEXT(call)                                                               \
	do {                                                                     \
		if ((rc = (call)) < 0)                                           \
			goto done;                                               \
		if (!(ns && skips[ns - 1] == h))                                 \
			cdm_nn_free(nn, h);                                      \
		h = n;                                                           \
		n = NULL;                                                        \
	} while (0)
#define PUSH() (skips[ns++] = h)
	if ((rc = time_embed(u, t, x->dim[0], &temb, err)) < 0)
		goto done;
	if (c->center_input_sample && (rc = cdm_nn_scale(nn, x, 2.0, -1.0, &xin, err)) < 0)
		goto done;
	if ((rc = cdm_blk_conv(nn, xin ? xin : x, &u->conv_in, 1, 1, 1, &h, err)) < 0)
		goto done;
	PUSH();
	for (int i = 0; i < c->n_blocks; i++) {
		struct cblock *b = &u->down[i];
		for (int j = 0; j < b->nres; j++) {
			NEXT(cdm_blk_resnet_fwd(nn, &b->res[j], h, temb, &n, err));
			if (b->att)
				NEXT(t2d_fwd(nn, &b->att[j], h, ctx, &n, err));
			PUSH();
		}
		if (b->has_samp) {
			NEXT(cdm_blk_downsample(nn, h, &b->samp, c->downsample_padding, &n, err));
			PUSH();
		}
	}
	if (c->has_mid) {
		NEXT(cdm_blk_resnet_fwd(nn, &u->mid_res[0], h, temb, &n, err));
		NEXT(t2d_fwd(nn, &u->mid_att, h, ctx, &n, err));
		NEXT(cdm_blk_resnet_fwd(nn, &u->mid_res[1], h, temb, &n, err));
	}
	for (int i = 0; i < c->n_blocks; i++) {
		struct cblock *b = &u->up[i];
		for (int j = 0; j < b->nres; j++) {
			/* current features first, skip second; the skip is consumed */
			cdm_tensor *skip = skips[ns - 1];
			NEXT(cdm_nn_concat(nn, h, skip, &n, err));
			cdm_nn_free(nn, skip);
			skips[--ns] = NULL;
			NEXT(cdm_blk_resnet_fwd(nn, &b->res[j], h, temb, &n, err));
			if (b->att)
				NEXT(t2d_fwd(nn, &b->att[j], h, ctx, &n, err));
		}
		if (b->has_samp)
			NEXT(cdm_blk_upsample(nn, h, &b->samp, &n, err));
	}
	NEXT(cdm_nn_group_norm(nn, h, (int)c->norm_num_groups, c->norm_eps, u->norm_out.w,
			       u->norm_out.b, &n, err));
	NEXT(cdm_nn_act(nn, h, CDM_ACT_SILU, &n, err));
	NEXT(cdm_blk_conv(nn, h, &u->conv_out, 1, 1, 1, &n, err));
	*eps = h;
	h = NULL;
#undef NEXT
#undef PUSH
done:
	for (int i = 0; i < ns; i++)
		if (skips[i] == h)
			h = NULL; /* owned by the skip list */
	for (int i = 0; i < ns; i++)
		cdm_nn_free(nn, skips[i]);
	cdm_nn_free(nn, h);
	cdm_nn_free(nn, temb);
	cdm_nn_free(nn, xin);
	return rc;
}
