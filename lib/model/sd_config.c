/* model/sd_config: SD component configs and folders (see sd_config.h). */
#define _GNU_SOURCE
#include "sd_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_CONFIG_MAX (1 << 20)

/* A parse in progress. */
struct pc {
	const json_t *obj;
	const char *what;
	struct cdm_err *err;
};

/* key's value; NULL when missing or null (then *is_null = 1). */
static const json_t *get(struct pc *p, const char *key, int *is_null)
{
	const json_t *v = json_object_get(p->obj, key);
	*is_null = v && json_is_null(v);
	return v && !json_is_null(v) ? v : NULL;
}

static int type_err(struct pc *p, const char *key, const char *expected)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: key '%s': expected %s", p->what, key, expected);
}

static int unsupported(struct pc *p, const char *key, const char *value)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: %s = %s is not supported", p->what, key, value);
}

static int as_int(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
	    fabs(json_real_value(v)) < 1e15) {
		*out = (int64_t)json_real_value(v);
		return 0;
	}
	return -1;
}

/* Integer in [lo, hi]; null is refused. */
static int get_int(struct pc *p, const char *key, int64_t def, int64_t lo, int64_t hi,
		   int64_t *out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = def;
	if (n)
		return unsupported(p, key, "null");
	if (v && as_int(v, out) < 0)
		return type_err(p, key, "an integer");
	if (*out < lo || *out > hi)
		return cdm_fail(p->err, CDM_EINPUT, "%s: %s = %lld is out of range %lld..%lld",
				p->what, key, (long long)*out, (long long)lo, (long long)hi);
	return 0;
}

static int get_num(struct pc *p, const char *key, double def, double *out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = def;
	if (n)
		return unsupported(p, key, "null");
	if (v && (!json_is_number(v) || !isfinite(json_number_value(v))))
		return type_err(p, key, "a finite number");
	if (v)
		*out = json_number_value(v);
	return 0;
}

static int get_bool(struct pc *p, const char *key, int def, int *out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = def;
	if (v && !json_is_boolean(v))
		return type_err(p, key, "true or false");
	if (v)
		*out = json_is_true(v);
	return 0;
}

/* String key (NULL for null or, with def NULL, missing). */
static int get_str(struct pc *p, const char *key, const char *def, const char **out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = n ? NULL : def;
	if (v && !json_is_string(v))
		return type_err(p, key, "a string");
	if (v)
		*out = json_string_value(v);
	return 0;
}

/* The key must be missing, null, false, or (if ok_str) that string, or
 * (if ok_num) that number: features the models do not implement. */
static int require_default(struct pc *p, const char *key, const char *ok_str, double ok_num,
			   int has_num)
{
	int n;
	const json_t *v = get(p, key, &n);
	if (!v || json_is_false(v))
		return 0;
	if (ok_str && json_is_string(v) && !strcmp(json_string_value(v), ok_str))
		return 0;
	if (has_num && json_is_number(v) && json_number_value(v) == ok_num)
		return 0;
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	char shown[64];
	snprintf(shown, sizeof shown, "%s", s ? s : "?");
	free(s);
	return unsupported(p, key, shown);
}

static int get_silu(struct pc *p)
{
	const char *s;
	CDM_TRY(get_str(p, "act_fn", "silu", &s));
	if (!s || (strcmp(s, "silu") && strcmp(s, "swish")))
		return unsupported(p, "act_fn", s ? s : "null");
	return 0;
}

static int check_class(struct pc *p, const char *want)
{
	const char *cls;
	CDM_TRY(get_str(p, "_class_name", NULL, &cls));
	if (cls && strcmp(cls, want))
		return cdm_fail(p->err, CDM_EINPUT, "%s: _class_name = '%s', expected '%s'", p->what,
				cls, want);
	return 0;
}

/* block_out_channels into c (n blocks); def used when missing. */
static int get_boc(struct pc *p, const int64_t *def, int ndef, int64_t *boc, int *n)
{
	int isnull;
	const json_t *v = get(p, "block_out_channels", &isnull);
	if (isnull)
		return unsupported(p, "block_out_channels", "null");
	if (!v) {
		*n = ndef;
		memcpy(boc, def, (size_t)ndef * sizeof *boc);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > CDM_UNET_MAX_BLOCKS)
		return type_err(p, "block_out_channels", "an array of 1 to 8 integers");
	*n = (int)json_array_size(v);
	for (int i = 0; i < *n; i++)
		if (as_int(json_array_get(v, (size_t)i), &boc[i]) < 0 || boc[i] < 1 ||
		    boc[i] > 65536)
			return type_err(p, "block_out_channels", "integers in 1..65536");
	return 0;
}

/* Block type names: out[i] = 1 for `a`, 0 for `b`; other names refused. */
static int get_types(struct pc *p, const char *key, const char *const *def, int ndef,
		     const char *a, const char *b, int *out, int *n)
{
	int isnull;
	const json_t *v = get(p, key, &isnull);
	if (isnull)
		return unsupported(p, key, "null");
	if (v && (!json_is_array(v) || json_array_size(v) < 1 ||
		  json_array_size(v) > CDM_UNET_MAX_BLOCKS))
		return type_err(p, key, "an array of 1 to 8 block type names");
	*n = v ? (int)json_array_size(v) : ndef;
	for (int i = 0; i < *n; i++) {
		const char *s = !v && def ? def[i] : "";
		if (v) {
			const json_t *e = json_array_get(v, (size_t)i);
			if (!json_is_string(e))
				return type_err(p, key, "an array of strings");
			s = json_string_value(e);
		}
		if (!strcmp(s, a))
			out[i] = 1;
		else if (b && !strcmp(s, b))
			out[i] = 0;
		else
			return cdm_fail(p->err, CDM_EINPUT, "%s: %s[%d] = '%s' is not supported",
					p->what, key, i, s);
	}
	return 0;
}

/* An int or a list of n ints (per block), each in [1, hi]. */
static int get_per_block(struct pc *p, const char *key, int64_t def, int n, int64_t hi,
			 int64_t *out)
{
	int isnull;
	const json_t *v = get(p, key, &isnull);
	if (isnull)
		return unsupported(p, key, "null");
	if (v && json_is_array(v)) {
		if ((int)json_array_size(v) != n)
			return cdm_fail(p->err, CDM_EINPUT, "%s: %s has %zu entries for %d blocks",
					p->what, key, json_array_size(v), n);
		for (int i = 0; i < n; i++)
			if (as_int(json_array_get(v, (size_t)i), &out[i]) < 0 || out[i] < 1 ||
			    out[i] > hi)
				return type_err(p, key, "positive integers");
		return 0;
	}
	int64_t x = def;
	if (v && (as_int(v, &x) < 0 || x < 1 || x > hi))
		return type_err(p, key, "a positive integer or a list of them");
	for (int i = 0; i < n; i++)
		out[i] = x;
	return 0;
}

/* Features of UNet2DConditionModel that the C model does not implement. */
static int unet_cond_refusals(struct pc *p)
{
	static const char *const nulls[] = {
		"class_embed_type", "addition_embed_type", "num_class_embeds", "encoder_hid_dim",
		"encoder_hid_dim_type", "time_cond_proj_dim", "timestep_post_act",
		"time_embedding_act_fn", "num_attention_heads", "cross_attention_norm",
		"projection_class_embeddings_input_dim", "addition_time_embed_dim",
		"reverse_transformer_layers_per_block", "only_cross_attention",
		"dual_cross_attention", "class_embeddings_concat", "resnet_skip_time_act",
		"mid_block_only_cross_attention"};
	for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
		CDM_TRY(require_default(p, nulls[i], NULL, 0, 0));
	CDM_TRY(require_default(p, "time_embedding_type", "positional", 0, 0));
	CDM_TRY(require_default(p, "resnet_time_scale_shift", "default", 0, 0));
	CDM_TRY(require_default(p, "attention_type", "default", 0, 0));
	CDM_TRY(require_default(p, "conv_in_kernel", NULL, 3, 1));
	CDM_TRY(require_default(p, "conv_out_kernel", NULL, 3, 1));
	CDM_TRY(require_default(p, "resnet_out_scale_factor", NULL, 1, 1));
	int n;
	const json_t *v = get(p, "transformer_layers_per_block", &n);
	int ok = !v || (json_is_integer(v) && json_integer_value(v) == 1);
	if (v && json_is_array(v)) {
		ok = 1;
		for (size_t i = 0; i < json_array_size(v); i++)
			ok = ok && json_is_integer(json_array_get(v, i)) &&
			     json_integer_value(json_array_get(v, i)) == 1;
	}
	if (!ok || n)
		return cdm_fail(p->err, CDM_EINPUT, "%s: transformer_layers_per_block must be 1 "
				"(other depths are not supported)", p->what);
	v = get(p, "layers_per_block", &n);
	if (v && json_is_array(v))
		return unsupported(p, "layers_per_block", "a per-block list");
	return 0;
}

static int sample_size(struct pc *p, int64_t *h, int64_t *w)
{
	int n;
	const json_t *v = get(p, "sample_size", &n);
	*h = *w = 0;
	if (!v)
		return 0;
	if (json_is_array(v) && json_array_size(v) == 2 &&
	    as_int(json_array_get(v, 0), h) == 0 && as_int(json_array_get(v, 1), w) == 0)
		return 0;
	if (as_int(v, h) == 0) {
		*w = *h;
		return 0;
	}
	return type_err(p, "sample_size", "an integer or [H, W]");
}

static int parse_unet_cond(struct pc *p, struct cdm_unet_cond_config *c)
{
	static const int64_t boc_def[4] = {320, 640, 1280, 1280};
	static const char *const down_def[4] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
						"CrossAttnDownBlock2D", "DownBlock2D"};
	static const char *const up_def[4] = {"UpBlock2D", "CrossAttnUpBlock2D",
					      "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
	memset(c, 0, sizeof *c);
	CDM_TRY(check_class(p, "UNet2DConditionModel"));
	CDM_TRY(unet_cond_refusals(p));
	CDM_TRY(get_silu(p));
	CDM_TRY(sample_size(p, &c->sample_h, &c->sample_w));
	CDM_TRY(get_int(p, "in_channels", 4, 1, 4096, &c->in_channels));
	CDM_TRY(get_int(p, "out_channels", 4, 1, 4096, &c->out_channels));
	CDM_TRY(get_bool(p, "center_input_sample", 0, &c->center_input_sample));
	CDM_TRY(get_bool(p, "flip_sin_to_cos", 1, &c->flip_sin_to_cos));
	CDM_TRY(get_num(p, "freq_shift", 0, &c->freq_shift));
	CDM_TRY(get_boc(p, boc_def, 4, c->boc, &c->n_blocks));
	int nd, nu;
	CDM_TRY(get_types(p, "down_block_types", down_def, 4, "CrossAttnDownBlock2D", "DownBlock2D",
			  c->down_cross, &nd));
	CDM_TRY(get_types(p, "up_block_types", up_def, 4, "CrossAttnUpBlock2D", "UpBlock2D",
			  c->up_cross, &nu));
	if (nd != c->n_blocks || nu != c->n_blocks)
		return cdm_fail(p->err, CDM_EINPUT,
				"%s: %d down blocks and %d up blocks for %d block_out_channels",
				p->what, nd, nu, c->n_blocks);
	const char *mid;
	CDM_TRY(get_str(p, "mid_block_type", "UNetMidBlock2DCrossAttn", &mid));
	if (mid && strcmp(mid, "UNetMidBlock2DCrossAttn"))
		return unsupported(p, "mid_block_type", mid);
	c->has_mid = mid != NULL;
	CDM_TRY(get_int(p, "layers_per_block", 2, 1, 64, &c->layers_per_block));
	CDM_TRY(get_int(p, "downsample_padding", 1, 0, 8, &c->downsample_padding));
	CDM_TRY(get_num(p, "mid_block_scale_factor", 1, &c->mid_block_scale_factor));
	if (c->mid_block_scale_factor == 0)
		return unsupported(p, "mid_block_scale_factor", "0");
	CDM_TRY(get_int(p, "norm_num_groups", 32, 1, 65536, &c->norm_num_groups));
	CDM_TRY(get_num(p, "norm_eps", 1e-5, &c->norm_eps));
	if (!(c->norm_eps > 0))
		return type_err(p, "norm_eps", "a number > 0");
	CDM_TRY(get_per_block(p, "attention_head_dim", 8, c->n_blocks, 65536, c->heads));
	CDM_TRY(get_per_block(p, "cross_attention_dim", 1280, c->n_blocks, 1 << 20, c->cross_dim));
	CDM_TRY(get_bool(p, "use_linear_projection", 0, &c->use_linear_projection));
	int n;
	if (get(p, "time_embedding_dim", &n))
		CDM_TRY(get_int(p, "time_embedding_dim", 0, 1, 1 << 20, &c->temb_dim));
	else
		c->temb_dim = 4 * c->boc[0];
	return 0;
}

static int parse_vae(struct pc *p, struct cdm_vae_config *c)
{
	static const int64_t boc_def[1] = {64};
	static const char *const up_def[1] = {"UpDecoderBlock2D"};
	memset(c, 0, sizeof *c);
	CDM_TRY(check_class(p, "AutoencoderKL"));
	CDM_TRY(get_silu(p));
	CDM_TRY(get_int(p, "out_channels", 3, 1, 4096, &c->out_channels));
	CDM_TRY(get_int(p, "latent_channels", 4, 1, 4096, &c->latent_channels));
	CDM_TRY(get_boc(p, boc_def, 1, c->boc, &c->n_blocks));
	int types[CDM_UNET_MAX_BLOCKS], nu;
	CDM_TRY(get_types(p, "up_block_types", up_def, 1, "UpDecoderBlock2D", NULL, types, &nu));
	if (nu != c->n_blocks)
		return cdm_fail(p->err, CDM_EINPUT, "%s: %d up blocks for %d block_out_channels",
				p->what, nu, c->n_blocks);
	CDM_TRY(get_int(p, "layers_per_block", 1, 1, 64, &c->layers_per_block));
	CDM_TRY(get_int(p, "norm_num_groups", 32, 1, 65536, &c->norm_num_groups));
	CDM_TRY(get_num(p, "scaling_factor", 0.18215, &c->scaling_factor));
	CDM_TRY(get_bool(p, "use_post_quant_conv", 1, &c->use_post_quant_conv));
	CDM_TRY(get_bool(p, "mid_block_add_attention", 1, &c->mid_attention));
	/* decode() ignores shift_factor (the pipeline applies it before). */
	return 0;
}

static int parse_clip(struct pc *p, struct cdm_clip_config *c)
{
	memset(c, 0, sizeof *c);
	CDM_TRY(get_int(p, "vocab_size", 49408, 1, 1 << 24, &c->vocab_size));
	CDM_TRY(get_int(p, "hidden_size", 512, 1, 65536, &c->hidden_size));
	CDM_TRY(get_int(p, "intermediate_size", 2048, 1, 1 << 20, &c->intermediate_size));
	CDM_TRY(get_int(p, "num_hidden_layers", 12, 1, 1024, &c->num_layers));
	CDM_TRY(get_int(p, "num_attention_heads", 8, 1, 65536, &c->num_heads));
	CDM_TRY(get_int(p, "max_position_embeddings", 77, 1, 1 << 20, &c->max_positions));
	CDM_TRY(get_num(p, "layer_norm_eps", 1e-5, &c->layer_norm_eps));
	if (!(c->layer_norm_eps > 0))
		return type_err(p, "layer_norm_eps", "a number > 0");
	if (c->hidden_size % c->num_heads)
		return cdm_fail(p->err, CDM_EINPUT, "%s: num_attention_heads %lld does not divide "
				"hidden_size %lld", p->what, (long long)c->num_heads,
				(long long)c->hidden_size);
	const char *act;
	CDM_TRY(get_str(p, "hidden_act", "quick_gelu", &act));
	if (act && !strcmp(act, "quick_gelu"))
		c->quick_gelu = 1;
	else if (!act || strcmp(act, "gelu"))
		return unsupported(p, "hidden_act", act ? act : "null");
	return 0;
}

/* Parse text with one of the parsers above. A CLIPModel config nests the
 * text tower in "text_config": use that object then. */
static int parse_with(const char *text, size_t len, const char *what, struct cdm_err *err,
		      int (*fn)(struct pc *, void *), void *out, int nested_text)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return cdm_fail(err, CDM_EINPUT, "%s: line %d column %d: %s", what, je.line,
				je.column, je.text);
	int rc;
	if (!json_is_object(root)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: not a JSON object", what);
	} else {
		const json_t *obj = root, *tc = json_object_get(root, "text_config");
		if (nested_text && tc && json_is_object(tc))
			obj = tc;
		struct pc p = {.obj = obj, .what = what, .err = err};
		rc = fn(&p, out);
	}
	json_decref(root);
	return rc;
}

static int fn_unet(struct pc *p, void *o) { return parse_unet_cond(p, o); }
static int fn_vae(struct pc *p, void *o) { return parse_vae(p, o); }
static int fn_clip(struct pc *p, void *o) { return parse_clip(p, o); }

int cdm_unet_cond_config_parse(struct cdm_unet_cond_config *c, const char *text, size_t len,
			       const char *what, struct cdm_err *err)
{
	return parse_with(text, len, what, err, fn_unet, c, 0);
}

int cdm_vae_config_parse(struct cdm_vae_config *c, const char *text, size_t len,
			 const char *what, struct cdm_err *err)
{
	return parse_with(text, len, what, err, fn_vae, c, 0);
}

int cdm_clip_config_parse(struct cdm_clip_config *c, const char *text, size_t len,
			  const char *what, struct cdm_err *err)
{
	return parse_with(text, len, what, err, fn_clip, c, 1);
}

#define LOAD_FN(name, type, parse)                                                    \
	int name(type *c, const char *path, struct cdm_err *err)                      \
	{                                                                             \
		char *text = NULL;                                                    \
		size_t len = 0;                                                       \
		CDM_TRY(cdm_model_read_text(path, SD_CONFIG_MAX, &text, &len, err));  \
		int rc = parse(c, text, len, path, err);                              \
		cdm_free(text);                                                       \
		return rc;                                                            \
	}
LOAD_FN(cdm_unet_cond_config_load, struct cdm_unet_cond_config, cdm_unet_cond_config_parse)
LOAD_FN(cdm_vae_config_load, struct cdm_vae_config, cdm_vae_config_parse)
LOAD_FN(cdm_clip_config_load, struct cdm_clip_config, cdm_clip_config_parse)

/* ---- folders ---------------------------------------------------------------- */

int cdm_sd_locate(struct cdm_model_paths *p, const char *dir, enum cdm_sd_part part,
		  struct cdm_err *err)
{
	static const char *const sub[] = {"unet", "vae", "text_encoder", "tokenizer"};
	static const char *const what[] = {"UNet", "VAE", "text encoder", "tokenizer"};
	char folder[CDM_PATH_MAX], tmp[CDM_PATH_MAX];
	memset(p, 0, sizeof *p);
	if (!cdm_model_is_dir(dir))
		return cdm_fail(err, CDM_EINPUT, "%s: not a directory", dir);
	snprintf(folder, sizeof folder, "%s", dir);
	CDM_TRY(cdm_model_join(tmp, dir, "model_index.json", err));
	if (cdm_model_is_file(tmp)) {
		CDM_TRY(cdm_model_join(tmp, dir, sub[part], err));
		if (cdm_model_is_dir(tmp))
			snprintf(folder, sizeof folder, "%s", tmp);
	}
	if (part == CDM_SD_TOKENIZER) {
		snprintf(p->config, sizeof p->config, "%s", folder);
		CDM_TRY(cdm_model_join(tmp, folder, "vocab.json", err));
		if (!cdm_model_is_file(tmp))
			return cdm_fail(err, CDM_EINPUT, "%s: no vocab.json (not a CLIP tokenizer "
					"folder)", folder);
		return 0;
	}
	CDM_TRY(cdm_model_join(p->config, folder, "config.json", err));
	if (!cdm_model_is_file(p->config))
		return cdm_fail(err, CDM_EINPUT, "%s: no config.json (not a %s folder)", folder,
				what[part]);
	const char *base = part == CDM_SD_TEXT_ENCODER ? "model" : "diffusion_pytorch_model";
	char name[64];
	snprintf(name, sizeof name, "%s.safetensors", base);
	CDM_TRY(cdm_model_join(p->weights, folder, name, err));
	if (!cdm_model_is_file(p->weights)) {
		snprintf(name, sizeof name, "%s.fp16.safetensors", base);
		CDM_TRY(cdm_model_join(p->weights, folder, name, err));
		if (!cdm_model_is_file(p->weights))
			return cdm_fail(err, CDM_EINPUT, "%s: no %s.safetensors (%s weights)", folder,
					base, what[part]);
	}
	return 0;
}

int cdm_sd_unet_class(const char *dir, char *buf, size_t size, struct cdm_err *err)
{
	struct cdm_model_paths p;
	char *text = NULL;
	size_t len = 0;
	buf[0] = 0;
	CDM_TRY(cdm_model_locate(&p, dir, err));
	CDM_TRY(cdm_model_read_text(p.config, SD_CONFIG_MAX, &text, &len, err));
	json_t *root = json_loadb(text, len, 0, NULL);
	cdm_free(text);
	const json_t *v = root ? json_object_get(root, "_class_name") : NULL;
	if (v && json_is_string(v))
		snprintf(buf, size, "%s", json_string_value(v));
	json_decref(root);
	return 0;
}
