/*
 * model/unet_cond: diffusers' UNet2DConditionModel (the Stable Diffusion
 * UNet), built from a config and weights bound by name, evaluated through
 * the lib/nn op table so the same code can run on float32 or on shares.
 *
 * Owns: the module tree -- DownBlock2D / CrossAttnDownBlock2D,
 * UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D, Transformer2DModel
 * (GroupNorm eps 1e-6, 1x1-conv or linear projections) with one
 * BasicTransformerBlock (LayerNorm, self-attention, cross-attention on
 * encoder_hidden_states, GEGLU feed-forward with exact GELU) -- the mapping
 * to diffusers' state-dict names, and the forward pass of
 * reference/diffusers.md §2.3-2.8 and §4.1-4.2.
 * Does not own: the backend (the caller's cdm_nn must outlive the model),
 * the scheduler, the text encoder that produces the context.
 *
 * Naming quirk kept from diffusers: config `attention_head_dim` is the
 * number of HEADS; head_dim = C / heads (floor) and inner = heads * head_dim.
 * Invariants after cdm_unet_cond_new: every weight is bound with its exact
 * shape; extra tensors in the file are ignored.
 * Only uses the ops every backend has (no optional op).
 * Thread-safety: one thread (as its cdm_nn).
 */
#ifndef CDM_MODEL_UNET_COND_H
#define CDM_MODEL_UNET_COND_H

#include "../base/base.h"
#include "../nn/nn.h"
#include "config.h"
#include "sd_config.h"

typedef struct cdm_unet_cond cdm_unet_cond;

int cdm_unet_cond_new(cdm_unet_cond **out, cdm_nn *nn, const struct cdm_unet_cond_config *cfg,
		      struct cdm_err *err);
/* Locate unet config and weights in a UNet folder or SD pipeline folder
 * (cdm_model_locate rules), load the weights into nn and build the model. */
int cdm_unet_cond_load(cdm_unet_cond **out, cdm_nn *nn, const char *dir,
		       struct cdm_model_paths *paths, struct cdm_err *err);
void cdm_unet_cond_free(cdm_unet_cond *u);

const struct cdm_unet_cond_config *cdm_unet_cond_config(const cdm_unet_cond *u);
int64_t cdm_unet_cond_params(const cdm_unet_cond *u);
/* The context width D every cross-attention expects. */
int64_t cdm_unet_cond_ctx_dim(const cdm_unet_cond *u);

/* Check x [B,in,H,W] (sizes halve evenly) and, if ctx_dim is not NULL, a
 * context shape [B,L,D]. */
int cdm_unet_cond_check_input(const cdm_unet_cond *u, int ndim, const int64_t *dim,
			      int ctx_ndim, const int64_t *ctx_dim, struct cdm_err *err);

/* eps = UNet(x, t, ctx): x [B,in,H,W], t[B] public timesteps, ctx [B,L,D]
 * encoder_hidden_states -> new [B,out,H,W]. */
int cdm_unet_cond_forward(cdm_unet_cond *u, const cdm_tensor *x, const double *t,
			  const cdm_tensor *ctx, cdm_tensor **eps, struct cdm_err *err);

#endif
