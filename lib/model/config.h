/*
 * model/config: UNet2DModel's config.json and diffusers folder layout.
 *
 * Owns: struct cdm_unet_config with every default of diffusers'
 * UNet2DModel.__init__ (reference/diffusers.md §2.1) already applied and
 * every null resolved; refusal of unsupported values at load time with a
 * message naming the key and the value; locating config, weights and
 * scheduler config in a model folder or a pipeline folder; the small-file
 * reader and folder helpers that sd_config.c and tokenizer.c also use.
 * Does not own: weights (lib/model/unet.c binds them through lib/nn), the
 * scheduler config (lib/sched).
 *
 * Rules as diffusers' ConfigMixin: keys starting with '_' are ignored,
 * keys listed in `_use_default_values` take the default, unknown keys are
 * ignored, a missing key takes the default, JSON null is Python None.
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_MODEL_CONFIG_H
#define CDM_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../nn/nn.h"

#define CDM_UNET_MAX_BLOCKS 8
#define CDM_PATH_MAX 4096

struct cdm_unet_config {
	int64_t sample_h, sample_w;   /* 0 if sample_size is null */
	int64_t in_channels, out_channels;
	int center_input_sample;
	int64_t temb_dim;             /* time_embedding_dim, or 4*boc[0] */
	double freq_shift;
	int flip_sin_to_cos;
	int n_blocks;                 /* len(block_out_channels) = len(down) = len(up) */
	int64_t boc[CDM_UNET_MAX_BLOCKS]; /* block_out_channels */
	int down_attn[CDM_UNET_MAX_BLOCKS]; /* 1: AttnDownBlock2D, 0: DownBlock2D */
	int up_attn[CDM_UNET_MAX_BLOCKS];   /* 1: AttnUpBlock2D, 0: UpBlock2D */
	int has_mid;                  /* mid_block_type "UNetMidBlock2D" (1) or null (0) */
	int64_t layers_per_block;
	double mid_block_scale_factor;
	int64_t downsample_padding;
	int downsample_resnet;        /* downsample_type "resnet" (AttnDownBlock2D only) */
	int upsample_resnet;          /* upsample_type "resnet" (AttnUpBlock2D only) */
	enum cdm_act act;             /* act_fn; the time MLP and output head use SiLU */
	int64_t attention_head_dim;   /* 0 = null: one head of dim C */
	int64_t norm_num_groups;
	int64_t mid_attn_groups;      /* resolved attn_norm_num_groups; 0 = no group_norm */
	double norm_eps;
	int scale_shift;              /* resnet_time_scale_shift "scale_shift" */
	int add_attention;
	int64_t num_class_embeds;     /* 0 = no class embedding */
};

/* Parse config.json text. `what` names it in messages ("unet/config.json"). */
int cdm_unet_config_parse(struct cdm_unet_config *cfg, const char *text, size_t len,
			  const char *what, struct cdm_err *err);
int cdm_unet_config_load(struct cdm_unet_config *cfg, const char *path, struct cdm_err *err);
/* Serialise back to JSON (every key explicit); cdm_free the result. */
int cdm_unet_config_to_json(const struct cdm_unet_config *cfg, char **out, struct cdm_err *err);

/* Where the parts of a model live. A flat folder has config.json,
 * diffusion_pytorch_model[.fp16].safetensors and optional
 * scheduler_config.json; a pipeline folder has model_index.json and the
 * components in unet/ and scheduler/ (a missing subfolder means the root,
 * as diffusers). sched_config is "" when there is none. */
struct cdm_model_paths {
	char config[CDM_PATH_MAX];
	char weights[CDM_PATH_MAX];
	char sched_config[CDM_PATH_MAX];
};
int cdm_model_locate(struct cdm_model_paths *p, const char *dir, struct cdm_err *err);

/* Folder and file helpers shared by the config readers of lib/model. */
/* Read a small text file whole (<= limit bytes), NUL-terminated; cdm_free
 * *out. A larger file is refused (config and vocab files are small). */
int cdm_model_read_text(const char *path, size_t limit, char **out, size_t *len,
			struct cdm_err *err);
int cdm_model_is_file(const char *path); /* a regular file (following links) */
int cdm_model_is_dir(const char *path);
/* out (CDM_PATH_MAX bytes) = dir/name; refused if it does not fit. */
int cdm_model_join(char *out, const char *dir, const char *name, struct cdm_err *err);

#endif
