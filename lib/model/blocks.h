/*
 * model/blocks: building blocks shared by the models of lib/model
 * (unet.c, unet_cond.c, vae.c, clip.c): weight binding by diffusers name with
 * shape checks and parameter counting, ResnetBlock2D (act_fn, "default" or
 * "scale_shift" time embedding, or none, optional up/down resampling), the
 * spatial self-attention of UNet2DModel and of the VAE mid block (current or
 * legacy weight names), the 2x up- and downsamplers, the timestep MLP and
 * small op helpers.
 *
 * Owns: nothing beyond the tensors bound into the structs below (freed by the
 * matching *_free, which accept zeroed structs).
 * Does not own: the backend (the caller's cdm_nn outlives every struct), the
 * module trees and configs (unet.c, unet_cond.c, vae.c, clip.c), the
 * transformer blocks of UNet2DConditionModel (unet_cond.c).
 *
 * Semantics: reference/diffusers.md §2.4 (resnet, time embedding), §2.5
 * (attention), §2.6 (samplers). The op sequence of each block is fixed: the
 * secure backend's error figures and costs depend on it. Internal to
 * lib/model.
 * Thread-safety: as the cdm_nn used.
 */
#ifndef CDM_MODEL_BLOCKS_H
#define CDM_MODEL_BLOCKS_H

#include "../base/base.h"
#include "../nn/nn.h"

/* A bound weight and optional bias. */
struct cdm_wb {
	cdm_tensor *w; /* shape as bound */
	cdm_tensor *b; /* [out] or NULL */
};

/* Binding state: the backend and the number of scalars bound so far. */
struct cdm_blk {
	cdm_nn *nn;
	int64_t params;
};

/* Bind `name` with shape {d0,d1,d2,d3} truncated at the first 0. */
int cdm_blk_bind(struct cdm_blk *b, cdm_tensor **out, const char *name, int64_t d0, int64_t d1,
		 int64_t d2, int64_t d3, struct cdm_err *err);
/* Bind `<prefix>.<part>.weight` (dims as above) and, if bias, `.bias` [d0]
 * (part "" binds `<prefix>.weight`). */
int cdm_blk_bind_wb(struct cdm_blk *b, struct cdm_wb *wb, const char *prefix, const char *part,
		    int64_t d0, int64_t d1, int64_t d2, int64_t d3, int bias, struct cdm_err *err);
/* A [o,i] projection under `part`, or under `legacy` when only that name is
 * in the weights (diffusers' deprecated attention names). */
int cdm_blk_bind_proj(struct cdm_blk *b, struct cdm_wb *wb, const char *prefix,
		      const char *part, const char *legacy, int64_t o, int64_t i, int bias,
		      struct cdm_err *err);
/* config check: groups divide the channels of `<prefix>.<part>`. */
int cdm_blk_check_groups(int64_t groups, int64_t c, const char *prefix, const char *part,
			 struct cdm_err *err);
void cdm_blk_free_wb(cdm_nn *nn, struct cdm_wb *wb);

/* ResnetBlock2D (reference/diffusers.md §2.4): norm1, act, optional 2x
 * resampling of both paths, conv1, time embedding ("default": added before
 * norm2; "scale_shift": norm2 * (1 + scale) + shift), act, conv2, 1x1 conv
 * shortcut when cin != cout, out = (shortcut + h) / osf. */
enum cdm_blk_resample { CDM_BLK_SAME, CDM_BLK_UP, CDM_BLK_DOWN };
struct cdm_blk_resnet_spec {
	int64_t temb_dim;     /* 0: no time_emb_proj (VAE) */
	int64_t groups;       /* of norm1 and norm2 */
	double eps, osf;      /* GroupNorm eps, output_scale_factor */
	enum cdm_act act;     /* both activations (act_fn) */
	int scale_shift;      /* resnet_time_scale_shift "scale_shift" */
	enum cdm_blk_resample resample; /* nearest 2x up / 2x2 average pool down */
};
struct cdm_blk_resnet {
	int64_t cin, cout;
	struct cdm_blk_resnet_spec s;
	struct cdm_wb norm1, conv1, temb, norm2, conv2, shortcut; /* temb.w, shortcut.w may be NULL */
};
int cdm_blk_resnet_bind(struct cdm_blk *b, struct cdm_blk_resnet *r, const char *prefix,
			int64_t cin, int64_t cout, const struct cdm_blk_resnet_spec *spec,
			struct cdm_err *err);
/* x [B,cin,H,W], temb_act [B,temb] = act(temb) or NULL -> *out [B,cout,H',W']. */
int cdm_blk_resnet_fwd(cdm_nn *nn, const struct cdm_blk_resnet *r, const cdm_tensor *x,
		       const cdm_tensor *temb_act, cdm_tensor **out, struct cdm_err *err);
void cdm_blk_resnet_free(cdm_nn *nn, struct cdm_blk_resnet *r);

/* Spatial self-attention of UNet2DModel's attention blocks and the VAE mid
 * block (reference/diffusers.md §2.5): optional group_norm, biased q/k/v/out
 * projections (current or legacy names), heads = c / head_dim, out =
 * (attn + x) / rescale_output_factor. */
struct cdm_blk_attn {
	int64_t c, heads, dh;
	int64_t groups; /* 0: no group_norm */
	double eps;     /* of the group_norm */
	double rescale; /* rescale_output_factor */
	struct cdm_wb norm, q, k, v, o;
};
/* head_dim 0: one head of dim c. */
int cdm_blk_attn_bind(struct cdm_blk *b, struct cdm_blk_attn *a, const char *prefix, int64_t c,
		      int64_t head_dim, int64_t groups, double eps, double rescale,
		      struct cdm_err *err);
int cdm_blk_attn_fwd(cdm_nn *nn, const struct cdm_blk_attn *a, const cdm_tensor *x,
		     cdm_tensor **out, struct cdm_err *err);
void cdm_blk_attn_free(cdm_nn *nn, struct cdm_blk_attn *a);

/* 3x3 conv, stride s, padding {p0 top/left, p1 bottom/right}. */
int cdm_blk_conv(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *wb, int stride, int p0,
		 int p1, cdm_tensor **out, struct cdm_err *err);
/* Upsample2D: nearest x2 then 3x3 conv pad 1. */
int cdm_blk_upsample(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *conv,
		     cdm_tensor **out, struct cdm_err *err);
/* Downsample2D: 3x3 stride-2 conv; padding 0 pads right/bottom by one. */
int cdm_blk_downsample(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *conv,
		       int64_t padding, cdm_tensor **out, struct cdm_err *err);

/* TimestepEmbedding of both UNets: *out = linear_2(SiLU(linear_1(sinusoid(t))))
 * [B,temb], the sinusoid of width `dim` as cdm_nn_timestep_embedding. The
 * caller adds a class embedding and applies the resnets' activation. */
int cdm_blk_time_embed(cdm_nn *nn, const struct cdm_wb *lin1, const struct cdm_wb *lin2,
		       const double *t, int64_t batch, int64_t dim, int flip_sin_to_cos,
		       double freq_shift, cdm_tensor **out, struct cdm_err *err);

/* Make *h the result of a call that wrote *next (rc its status); free the
 * old *h. Returns rc. */
int cdm_blk_replace(cdm_nn *nn, cdm_tensor **h, int rc, cdm_tensor **next);

/* Size after one Downsample2D along an axis (0 if impossible). */
int64_t cdm_blk_down_size(int64_t s, int64_t padding);

#endif
