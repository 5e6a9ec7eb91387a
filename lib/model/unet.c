/*
 * model/unet: UNet2DModel over the nn op table (see unet.h). The structure
 * follows diffusers' unet_2d.py / unet_2d_blocks.py as described in
 * reference/diffusers.md §2; the resnet, attention, sampler and timestep
 * blocks are lib/model/blocks.
 */
#define _GNU_SOURCE
#include "unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blocks.h"

struct sampler {     /* down- or upsampler */
	int present;
	int is_resnet;
	struct cdm_wb conv;
	struct cdm_blk_resnet res;
};

struct block {
	int nres;
	struct cdm_blk_resnet *res; /* [nres] */
	struct cdm_blk_attn *att; /* [nres] or NULL */
	struct sampler samp;
};

struct cdm_unet {
	cdm_nn *nn;
	struct cdm_unet_config cfg;
	struct cdm_blk b; /* binder: backend and parameter count */
	struct cdm_wb conv_in, lin1, lin2, norm_out, conv_out;
	cdm_tensor *class_table; /* [K, temb] or NULL */
	struct block down[CDM_UNET_MAX_BLOCKS], up[CDM_UNET_MAX_BLOCKS];
	struct cdm_blk_resnet mid_res[2];
	struct cdm_blk_attn mid_attn;
	int mid_has_attn;
};

/* ---- binding -------------------------------------------------------------- */

/* A resnet of this model: spec from the config, osf and resample vary. */
static int bind_resnet(cdm_unet *u, struct cdm_blk_resnet *r, const char *prefix, int64_t cin,
		       int64_t cout, double osf, enum cdm_blk_resample resample,
		       struct cdm_err *err)
{
	const struct cdm_unet_config *c = &u->cfg;
	const struct cdm_blk_resnet_spec spec = {.temb_dim = c->temb_dim,
						 .groups = c->norm_num_groups,
						 .eps = c->norm_eps,
						 .osf = osf,
						 .act = c->act,
						 .scale_shift = c->scale_shift,
						 .resample = resample};
	return cdm_blk_resnet_bind(&u->b, r, prefix, cin, cout, &spec, err);
}

static int block_alloc(struct block *b, int nres, int attn, struct cdm_err *err)
{
	b->nres = nres;
	b->res = cdm_zalloc((size_t)nres, sizeof *b->res, err);
	if (!b->res)
		return CDM_ENOMEM;
	if (attn && !(b->att = cdm_zalloc((size_t)nres, sizeof *b->att, err)))
		return CDM_ENOMEM;
	return 0;
}

static int bind_down(cdm_unet *u, int i, struct cdm_err *err)
{
	const struct cdm_unet_config *c = &u->cfg;
	struct block *b = &u->down[i];
	int64_t cin = i ? c->boc[i - 1] : c->boc[0], cout = c->boc[i];
	char p[256];
	CDM_TRY(block_alloc(b, (int)c->layers_per_block, c->down_attn[i], err));
	for (int j = 0; j < b->nres; j++) {
		snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
		CDM_TRY(bind_resnet(u, &b->res[j], p, j ? cout : cin, cout, 1.0, CDM_BLK_SAME, err));
		if (b->att) {
			snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
			CDM_TRY(cdm_blk_attn_bind(&u->b, &b->att[j], p, cout, c->attention_head_dim,
						  c->norm_num_groups, c->norm_eps, 1.0, err));
		}
	}
	if (i == c->n_blocks - 1)
		return 0;
	b->samp.present = 1;
	/* Only AttnDownBlock2D honours downsample_type. */
	b->samp.is_resnet = c->down_attn[i] && c->downsample_resnet;
	snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
	if (b->samp.is_resnet) {
		return bind_resnet(u, &b->samp.res, p, cout, cout, 1.0, CDM_BLK_DOWN, err);
	}
	return cdm_blk_bind_wb(&u->b, &b->samp.conv, p, "conv", cout, cout, 3, 3, 1, err);
}

static int bind_up(cdm_unet *u, int i, struct cdm_err *err)
{
	const struct cdm_unet_config *c = &u->cfg;
	struct block *b = &u->up[i];
	int n = c->n_blocks;
	int64_t out = c->boc[n - 1 - i];
	int64_t prev = c->boc[n - 1 - (i ? i - 1 : 0)];
	int64_t in = c->boc[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
	int L = (int)c->layers_per_block;
	char p[256];
	CDM_TRY(block_alloc(b, L + 1, c->up_attn[i], err));
	for (int j = 0; j <= L; j++) {
		int64_t skip = j == L ? in : out, rin = j ? out : prev;
		snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
		CDM_TRY(bind_resnet(u, &b->res[j], p, rin + skip, out, 1.0, CDM_BLK_SAME, err));
		if (b->att) {
			snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
			CDM_TRY(cdm_blk_attn_bind(&u->b, &b->att[j], p, out, c->attention_head_dim,
						  c->norm_num_groups, c->norm_eps, 1.0, err));
		}
	}
	if (i == n - 1)
		return 0;
	b->samp.present = 1;
	b->samp.is_resnet = c->up_attn[i] && c->upsample_resnet;
	snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
	if (b->samp.is_resnet) {
		return bind_resnet(u, &b->samp.res, p, out, out, 1.0, CDM_BLK_UP, err);
	}
	return cdm_blk_bind_wb(&u->b, &b->samp.conv, p, "conv", out, out, 3, 3, 1, err);
}

static int bind_all(cdm_unet *u, struct cdm_err *err)
{
	const struct cdm_unet_config *c = &u->cfg;
	struct cdm_blk *b = &u->b;
	int64_t c0 = c->boc[0], td = c->temb_dim;
	CDM_TRY(cdm_blk_bind_wb(b, &u->conv_in, "conv_in", "", c0, c->in_channels, 3, 3, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->lin1, "time_embedding", "linear_1", td, c0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->lin2, "time_embedding", "linear_2", td, td, 0, 0, 1, err));
	if (c->num_class_embeds)
		CDM_TRY(cdm_blk_bind(&u->b, &u->class_table, "class_embedding.weight", c->num_class_embeds, td,
			     0, 0, err));
	for (int i = 0; i < c->n_blocks; i++)
		CDM_TRY(bind_down(u, i, err));
	if (c->has_mid) {
		int64_t cm = c->boc[c->n_blocks - 1];
		double osf = c->mid_block_scale_factor;
		CDM_TRY(bind_resnet(u, &u->mid_res[0], "mid_block.resnets.0", cm, cm, osf,
				    CDM_BLK_SAME, err));
		if (c->add_attention) {
			u->mid_has_attn = 1;
			CDM_TRY(cdm_blk_attn_bind(&u->b, &u->mid_attn, "mid_block.attentions.0", cm,
						  c->attention_head_dim, c->mid_attn_groups,
						  c->norm_eps, osf, err));
		}
		CDM_TRY(bind_resnet(u, &u->mid_res[1], "mid_block.resnets.1", cm, cm, osf,
				    CDM_BLK_SAME, err));
	}
	for (int i = 0; i < c->n_blocks; i++)
		CDM_TRY(bind_up(u, i, err));
	CDM_TRY(cdm_blk_check_groups(c->norm_num_groups, c0, "conv_norm_out", "", err));
	CDM_TRY(cdm_blk_bind_wb(b, &u->norm_out, "conv_norm_out", "", c0, 0, 0, 0, 1, err));
	return cdm_blk_bind_wb(b, &u->conv_out, "conv_out", "", c->out_channels, c0, 3, 3, 1, err);
}

int cdm_unet_new(cdm_unet **out, cdm_nn *nn, const struct cdm_unet_config *cfg,
		 struct cdm_err *err)
{
	*out = NULL;
	cdm_unet *u = cdm_zalloc(1, sizeof *u, err);
	if (!u)
		return CDM_ENOMEM;
	u->nn = nn;
	u->b.nn = nn;
	u->cfg = *cfg;
	int rc = bind_all(u, err);
	if (rc < 0) {
		cdm_unet_free(u);
		return rc;
	}
	*out = u;
	return 0;
}

int cdm_unet_load(cdm_unet **out, cdm_nn *nn, const char *model_dir,
		  struct cdm_model_paths *paths, struct cdm_err *err)
{
	struct cdm_model_paths p;
	struct cdm_unet_config cfg;
	*out = NULL;
	CDM_TRY(cdm_model_locate(&p, model_dir, err));
	CDM_TRY(cdm_unet_config_load(&cfg, p.config, err));
	CDM_TRY(cdm_nn_load_weights(nn, p.weights, err));
	if (paths)
		*paths = p;
	return cdm_unet_new(out, nn, &cfg, err);
}

static void free_block(cdm_nn *nn, struct block *b)
{
	for (int j = 0; b->res && j < b->nres; j++) {
		cdm_blk_resnet_free(nn, &b->res[j]);
		if (b->att)
			cdm_blk_attn_free(nn, &b->att[j]);
	}
	cdm_blk_free_wb(nn, &b->samp.conv);
	cdm_blk_resnet_free(nn, &b->samp.res);
	cdm_free(b->res);
	cdm_free(b->att);
}

void cdm_unet_free(cdm_unet *u)
{
	if (!u)
		return;
	cdm_nn *nn = u->nn;
	cdm_blk_free_wb(nn, &u->conv_in);
	cdm_blk_free_wb(nn, &u->lin1);
	cdm_blk_free_wb(nn, &u->lin2);
	cdm_blk_free_wb(nn, &u->norm_out);
	cdm_blk_free_wb(nn, &u->conv_out);
	cdm_nn_free(nn, u->class_table);
	for (int i = 0; i < CDM_UNET_MAX_BLOCKS; i++) {
		free_block(nn, &u->down[i]);
		free_block(nn, &u->up[i]);
	}
	cdm_blk_resnet_free(nn, &u->mid_res[0]);
	cdm_blk_resnet_free(nn, &u->mid_res[1]);
	cdm_blk_attn_free(nn, &u->mid_attn);
	cdm_free(u);
}

const struct cdm_unet_config *cdm_unet_config(const cdm_unet *u)
{
	return &u->cfg;
}

int64_t cdm_unet_params(const cdm_unet *u)
{
	return u->b.params;
}

/* ---- forward -------------------------------------------------------------- */

static int sampler_fwd(cdm_unet *u, const struct sampler *s, int up, const cdm_tensor *x,
		       const cdm_tensor *temb_act, cdm_tensor **out, struct cdm_err *err)
{
	if (s->is_resnet)
		return cdm_blk_resnet_fwd(u->nn, &s->res, x, temb_act, out, err);
	if (up)
		return cdm_blk_upsample(u->nn, x, &s->conv, out, err);
	return cdm_blk_downsample(u->nn, x, &s->conv, u->cfg.downsample_padding, out, err);
}

/* emb = linear_2(SiLU(linear_1(sinusoid(t)))) (+ class embedding), then the
 * activation every resnet applies to it (the same act_fn everywhere, so it is
 * computed once). */
static int time_embed(cdm_unet *u, const double *t, int64_t batch, const cdm_tensor *labels,
		      cdm_tensor **temb_act, struct cdm_err *err)
{
	cdm_nn *nn = u->nn;
	const struct cdm_unet_config *c = &u->cfg;
	cdm_tensor *e = NULL, *n = NULL;
	int rc;
	if ((rc = cdm_blk_time_embed(nn, &u->lin1, &u->lin2, t, batch, c->boc[0],
				     c->flip_sin_to_cos, c->freq_shift, &e, err)) < 0)
		goto fail;
	if (u->class_table) {
		cdm_tensor *ce = NULL;
		if ((rc = cdm_nn_embed(nn, labels, u->class_table, &ce, err)) < 0)
			goto fail;
		rc = cdm_nn_add(nn, e, ce, &n, err);
		cdm_nn_free(nn, ce);
		if ((rc = cdm_blk_replace(nn, &e, rc, &n)) < 0)
			goto fail;
	}
	if ((rc = cdm_blk_replace(nn, &e, cdm_nn_act(nn, e, c->act, &n, err), &n)) < 0)
		goto fail;
	*temb_act = e;
	return 0;
fail:
	cdm_nn_free(nn, e);
	return rc;
}

/* Output size of one downsampler along an axis of size s (0 if impossible). */
static int64_t down_size(const struct cdm_unet_config *c, int block, int64_t s)
{
	if (c->down_attn[block] && c->downsample_resnet)
		return s / 2; /* AvgPool2d(2) */
	return cdm_blk_down_size(s, c->downsample_padding);
}

int cdm_unet_check_input(const cdm_unet *u, int ndim, const int64_t *dim, struct cdm_err *err)
{
	const struct cdm_unet_config *c = &u->cfg;
	char b[96];
	if (ndim != 4 || dim[1] != c->in_channels || dim[0] < 1)
		return cdm_fail(err, CDM_EINPUT, "x: shape %s, expected [B,%lld,H,W]",
				cdm_shape_str(b, sizeof b, ndim, dim), (long long)c->in_channels);
	for (int axis = 2; axis < 4; axis++) {
		int64_t s = dim[axis];
		/* each level must halve exactly so the 2x upsampler restores the skip size */
		for (int i = 0; i + 1 < c->n_blocks; i++) {
			int64_t d = down_size(c, i, s);
			if (d < 1 || 2 * d != s)
				return cdm_fail(err, CDM_EINPUT,
						"x: shape %s: size %lld does not halve evenly through "
						"%d downsamplings",
						cdm_shape_str(b, sizeof b, ndim, dim),
						(long long)dim[axis], c->n_blocks - 1);
			s = d;
		}
	}
	return 0;
}

int cdm_unet_forward(cdm_unet *u, const cdm_tensor *x, const double *t,
		     const cdm_tensor *labels, cdm_tensor **eps, struct cdm_err *err)
{
	cdm_nn *nn = u->nn;
	const struct cdm_unet_config *c = &u->cfg;
	int64_t batch = x->dim[0];
	*eps = NULL;
	CDM_TRY(cdm_unet_check_input(u, x->ndim, x->dim, err));
	if (c->num_class_embeds && !labels)
		return cdm_fail(err, CDM_EINPUT, "model is class-conditional (%lld classes): a label "
				"is required", (long long)c->num_class_embeds);
	if (!c->num_class_embeds && labels)
		return cdm_fail(err, CDM_EINPUT, "model is not class-conditional: no label allowed");
	if (labels && (labels->ndim != 2 || labels->dim[0] != batch))
		return cdm_fail(err, CDM_EINPUT, "labels: one per batch element needed");

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
	if ((rc = time_embed(u, t, batch, labels, &temb, err)) < 0)
		goto done;
	if (c->center_input_sample && (rc = cdm_nn_scale(nn, x, 2.0, -1.0, &xin, err)) < 0)
		goto done;
	if ((rc = cdm_blk_conv(nn, xin ? xin : x, &u->conv_in, 1, 1, 1, &h, err)) < 0)
		goto done;
	PUSH();
	for (int i = 0; i < c->n_blocks; i++) {
		struct block *b = &u->down[i];
		for (int j = 0; j < b->nres; j++) {
			NEXT(cdm_blk_resnet_fwd(nn, &b->res[j], h, temb, &n, err));
			if (b->att)
				NEXT(cdm_blk_attn_fwd(nn, &b->att[j], h, &n, err));
			PUSH();
		}
		if (b->samp.present) {
			NEXT(sampler_fwd(u, &b->samp, 0, h, temb, &n, err));
			PUSH();
		}
	}
	if (c->has_mid) {
		NEXT(cdm_blk_resnet_fwd(nn, &u->mid_res[0], h, temb, &n, err));
		if (u->mid_has_attn)
			NEXT(cdm_blk_attn_fwd(nn, &u->mid_attn, h, &n, err));
		NEXT(cdm_blk_resnet_fwd(nn, &u->mid_res[1], h, temb, &n, err));
	}
	for (int i = 0; i < c->n_blocks; i++) {
		struct block *b = &u->up[i];
		for (int j = 0; j < b->nres; j++) {
			/* current features first, skip second; the skip is consumed */
			cdm_tensor *skip = skips[ns - 1];
			NEXT(cdm_nn_concat(nn, h, skip, &n, err));
			/* NEXT freed the old h unless it was this skip: free the skip once */
			cdm_nn_free(nn, skip);
			skips[--ns] = NULL;
			NEXT(cdm_blk_resnet_fwd(nn, &b->res[j], h, temb, &n, err));
			if (b->att)
				NEXT(cdm_blk_attn_fwd(nn, &b->att[j], h, &n, err));
		}
		if (b->samp.present)
			NEXT(sampler_fwd(u, &b->samp, 1, h, temb, &n, err));
	}
	/* The output head always uses SiLU in UNet2DModel (not act_fn). */
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
