/*
 * model/vae: the decode half of diffusers' AutoencoderKL (the SD VAE):
 * post_quant_conv (1x1), decoder.conv_in, decoder.mid_block (resnet,
 * one-head self-attention with group_norm and residual, resnet; no time
 * embedding; eps 1e-6), decoder.up_blocks (UpDecoderBlock2D: L+1 resnets,
 * nearest x2 + conv upsampler except after the last), conv_norm_out, SiLU,
 * conv_out (reference/diffusers.md §4.3). Legacy attention names
 * (query/key/value/proj_attn) load too. Encoder tensors in the file are
 * ignored.
 *
 * Owns: the bound decoder weights. Does not own: the backend (must outlive
 * the cdm_vae), the latent scaling (the input z is already divided by
 * scaling_factor, as the SD pipeline does), clamping or image conversion.
 * Only uses the ops every backend has.
 * Thread-safety: one thread (as its cdm_nn).
 */
#ifndef CDM_MODEL_VAE_H
#define CDM_MODEL_VAE_H

#include "../base/base.h"
#include "../nn/nn.h"
#include "sd_config.h"

typedef struct cdm_vae cdm_vae;

int cdm_vae_new(cdm_vae **out, cdm_nn *nn, const struct cdm_vae_config *cfg,
		struct cdm_err *err);
/* A VAE folder (config.json + diffusion_pytorch_model.safetensors) or an SD
 * pipeline folder with vae/. */
int cdm_vae_load(cdm_vae **out, cdm_nn *nn, const char *dir, struct cdm_err *err);
void cdm_vae_free(cdm_vae *v);

const struct cdm_vae_config *cdm_vae_config(const cdm_vae *v);
int64_t cdm_vae_params(const cdm_vae *v);
/* Check z [B,latent,h,w]. */
int cdm_vae_check_input(const cdm_vae *v, int ndim, const int64_t *dim, struct cdm_err *err);
/* x = decode(z): z [B,latent,h,w] -> new [B,out,h*2^(n-1),w*2^(n-1)], not clamped. */
int cdm_vae_decode(cdm_vae *v, const cdm_tensor *z, cdm_tensor **x, struct cdm_err *err);

#endif
