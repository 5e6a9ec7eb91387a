/*
 * model/unet: diffusers' UNet2DModel, built from a config and weights bound by
 * name, evaluated through the lib/nn op table (so the same code runs on the
 * float32 backend and on secret shares).
 *
 * Owns: the module tree (down blocks, mid block, up blocks, time and class
 * embeddings), the state-dict prefixes of every block, the forward pass of
 * reference/diffusers.md §2.3-2.8. The resnet, attention (with its legacy
 * query/key/value/proj_attn names), sampler and timestep blocks are the
 * shared ones of lib/model/blocks.h.
 * Does not own: the backend (the caller's cdm_nn must outlive the unet),
 * the scheduler (lib/sched).
 *
 * Invariants after cdm_unet_new: every weight the config needs is bound with
 * its exact shape; extra tensors in the file are ignored; every GroupNorm's
 * group count divides its channels.
 * Thread-safety: a cdm_unet is used by one thread (as its cdm_nn).
 */
#ifndef CDM_MODEL_UNET_H
#define CDM_MODEL_UNET_H

#include "../base/base.h"
#include "../nn/nn.h"
#include "config.h"

typedef struct cdm_unet cdm_unet;

/* Build the model from cfg, binding every weight through cdm_nn_weight. */
int cdm_unet_new(cdm_unet **out, cdm_nn *nn, const struct cdm_unet_config *cfg,
		 struct cdm_err *err);
/* Locate config.json and the weights in a model or pipeline folder, load
 * the weight file into nn (cdm_nn_load_weights) and build the model. If
 * paths is not NULL it receives the located files (scheduler config too). */
int cdm_unet_load(cdm_unet **out, cdm_nn *nn, const char *model_dir,
		  struct cdm_model_paths *paths, struct cdm_err *err);
void cdm_unet_free(cdm_unet *u);

const struct cdm_unet_config *cdm_unet_config(const cdm_unet *u);
/* Number of scalar parameters bound. */
int64_t cdm_unet_params(const cdm_unet *u);

/* Check an input shape [B,C,H,W] against the model: channel count and that
 * H and W come back to the same size after the down/up sampling. */
int cdm_unet_check_input(const cdm_unet *u, int ndim, const int64_t *dim, struct cdm_err *err);

/* eps = UNet(x, t): x [B,in,H,W]; t[B] timesteps (public); labels: one-hot
 * [B,num_class_embeds] (cdm_nn_onehot, or a secret input) for a
 * class-conditional model, else NULL. *eps is a new [B,out,H,W] tensor. */
int cdm_unet_forward(cdm_unet *u, const cdm_tensor *x, const double *t,
		     const cdm_tensor *labels, cdm_tensor **eps, struct cdm_err *err);

#endif
