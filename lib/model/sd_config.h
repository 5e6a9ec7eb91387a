/*
 * model/sd_config: the config.json of the Stable Diffusion components --
 * UNet2DConditionModel, AutoencoderKL (decoder part) and CLIPTextModel --
 * with the library defaults applied, and where each component lives in a
 * component folder or an SD pipeline folder (model_index.json + unet/, vae/,
 * text_encoder/, tokenizer/, scheduler/).
 *
 * Owns: the three config structs, their parsers (diffusers/transformers
 * rules: '_'-keys and unknown keys ignored, missing keys take the __init__
 * default, null is None) and the refusal of every value the C models do not
 * implement, with one message naming the file, key and value.
 * Does not own: weights (unet_cond.c, vae.c, clip.c bind them), the
 * UNet2DModel config (config.c), tokenizer files (tokenizer.c).
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_MODEL_SD_CONFIG_H
#define CDM_MODEL_SD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "config.h"

/* UNet2DConditionModel (reference/diffusers.md §4.1-4.2). */
struct cdm_unet_cond_config {
	int64_t sample_h, sample_w;     /* 0 if null */
	int64_t in_channels, out_channels;
	int center_input_sample;
	int flip_sin_to_cos;
	double freq_shift;
	int n_blocks;
	int64_t boc[CDM_UNET_MAX_BLOCKS];       /* block_out_channels */
	int down_cross[CDM_UNET_MAX_BLOCKS];    /* 1: CrossAttnDownBlock2D, 0: DownBlock2D */
	int up_cross[CDM_UNET_MAX_BLOCKS];      /* 1: CrossAttnUpBlock2D, 0: UpBlock2D */
	int has_mid;                            /* UNetMidBlock2DCrossAttn (1) or null (0) */
	int64_t layers_per_block;
	int64_t downsample_padding;
	double mid_block_scale_factor;
	int64_t norm_num_groups;
	double norm_eps;
	int64_t heads[CDM_UNET_MAX_BLOCKS];     /* attention_head_dim = HEADS, per down block */
	int64_t cross_dim[CDM_UNET_MAX_BLOCKS]; /* cross_attention_dim per down block */
	int use_linear_projection;
	int64_t temb_dim;                       /* time_embedding_dim or 4*boc[0] */
};

/* AutoencoderKL; only what decode() needs (§4.3). */
struct cdm_vae_config {
	int64_t out_channels, latent_channels;
	int n_blocks;
	int64_t boc[CDM_UNET_MAX_BLOCKS];
	int64_t layers_per_block;
	int64_t norm_num_groups;
	double scaling_factor;
	int use_post_quant_conv;
	int mid_attention; /* mid_block_add_attention */
};

/* CLIPTextModel (transformers CLIPTextConfig, §4.4). */
struct cdm_clip_config {
	int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions;
	int quick_gelu; /* hidden_act "quick_gelu" (1) or "gelu" (0) */
	double layer_norm_eps;
};

int cdm_unet_cond_config_parse(struct cdm_unet_cond_config *c, const char *text, size_t len,
			       const char *what, struct cdm_err *err);
int cdm_vae_config_parse(struct cdm_vae_config *c, const char *text, size_t len,
			 const char *what, struct cdm_err *err);
int cdm_clip_config_parse(struct cdm_clip_config *c, const char *text, size_t len,
			  const char *what, struct cdm_err *err);

/* Read a config file (at most 1 MiB) and parse it. */
int cdm_unet_cond_config_load(struct cdm_unet_cond_config *c, const char *path,
			      struct cdm_err *err);
int cdm_vae_config_load(struct cdm_vae_config *c, const char *path, struct cdm_err *err);
int cdm_clip_config_load(struct cdm_clip_config *c, const char *path, struct cdm_err *err);

/* SD components. */
enum cdm_sd_part { CDM_SD_UNET, CDM_SD_VAE, CDM_SD_TEXT_ENCODER, CDM_SD_TOKENIZER };

/* The folder of `part` under dir: dir/<part> when dir holds model_index.json
 * and that subfolder exists, else dir itself. For the models, config and
 * weights are located (diffusion_pytorch_model[.fp16].safetensors for unet
 * and vae, model[.fp16].safetensors for the text encoder); for the
 * tokenizer, config holds the folder and weights is "". One error naming the
 * folder when something is missing. */
int cdm_sd_locate(struct cdm_model_paths *p, const char *dir, enum cdm_sd_part part,
		  struct cdm_err *err);

/* `_class_name` of the UNet config in a model or pipeline folder into buf
 * ("" when the key is absent). */
int cdm_sd_unet_class(const char *dir, char *buf, size_t size, struct cdm_err *err);

/* Read a small text file whole (<= limit bytes); NUL-terminated; cdm_free.
 * The former name of cdm_model_read_text (config.h), kept for callers. */
static inline int cdm_sd_read_text(const char *path, size_t limit, char **out, size_t *len,
				   struct cdm_err *err)
{
	return cdm_model_read_text(path, limit, out, len, err);
}

#endif
