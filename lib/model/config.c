/* model/config: UNet2DModel config.json with diffusers' defaults (see config.h). */
#define _GNU_SOURCE
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (1 << 20)

/* A parse in progress: the object, the file name and the defaulted keys. */
struct pc {
	const json_t *obj;
	const json_t *use_default; /* `_use_default_values` array or NULL */
	const char *what;
	struct cdm_err *err;
};

/* The value of key, or NULL when missing, listed in _use_default_values, or
 * null (then *is_null is set). */
static const json_t *get(struct pc *p, const char *key, int *is_null)
{
	*is_null = 0;
	if (p->use_default) {
		size_t i;
		const json_t *v;
		json_array_foreach(p->use_default, i, v)
			if (json_is_string(v) && !strcmp(json_string_value(v), key))
				return NULL;
	}
	const json_t *v = json_object_get(p->obj, key);
	if (v && json_is_null(v)) {
		*is_null = 1;
		return NULL;
	}
	return v;
}

static int type_err(struct pc *p, const char *key, const char *expected)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: key '%s': expected %s", p->what, key, expected);
}

/* Integer key (a JSON real with an integral value is accepted). */
static int get_int(struct pc *p, const char *key, int64_t def, int64_t *out, int *is_null)
{
	int n;
	const json_t *v = get(p, key, &n);
	if (is_null)
		*is_null = n;
	*out = def;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
	    fabs(json_real_value(v)) < 1e15) {
		*out = (int64_t)json_real_value(v);
		return 0;
	}
	return type_err(p, key, "an integer");
}

static int get_num(struct pc *p, const char *key, double def, double *out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_number(v))
		return type_err(p, key, "a number");
	*out = json_number_value(v);
	if (!isfinite(*out))
		return type_err(p, key, "a finite number");
	return 0;
}

static int get_bool(struct pc *p, const char *key, int def, int *out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return type_err(p, key, "true or false");
	*out = json_is_true(v);
	return 0;
}

/* String key; *out = NULL for null. */
static int get_str(struct pc *p, const char *key, const char *def, const char **out)
{
	int n;
	const json_t *v = get(p, key, &n);
	*out = n ? NULL : def;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return type_err(p, key, "a string");
	*out = json_string_value(v);
	return 0;
}

static int unsupported(struct pc *p, const char *key, const char *value)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: %s = '%s' is not supported", p->what, key,
			value ? value : "null");
}

static int get_block_types(struct pc *p, const char *key, const char *const *def, int ndef,
			   const char *plain, const char *attn, int *out, int *count)
{
	int n;
	const json_t *v = get(p, key, &n);
	if (n)
		return cdm_fail(p->err, CDM_EINPUT, "%s: %s = null is not supported", p->what, key);
	if (v && (!json_is_array(v) || json_array_size(v) < 1 ||
		  json_array_size(v) > CDM_UNET_MAX_BLOCKS))
		return type_err(p, key, "an array of 1 to 8 block type names");
	*count = v ? (int)json_array_size(v) : ndef;
	for (int i = 0; i < *count; i++) {
		const char *s = def ? def[i] : NULL;
		if (v) {
			const json_t *e = json_array_get(v, (size_t)i);
			if (!json_is_string(e))
				return type_err(p, key, "an array of strings");
			s = json_string_value(e);
		}
		/* get_down_block/get_up_block strip a leading "UNetRes". */
		const char *t = strncmp(s, "UNetRes", 7) ? s : s + 7;
		if (!strcmp(t, plain))
			out[i] = 0;
		else if (!strcmp(t, attn))
			out[i] = 1;
		else
			return cdm_fail(p->err, CDM_EINPUT, "%s: %s[%d] = '%s' is not supported",
					p->what, key, i, s);
	}
	return 0;
}

static int get_boc(struct pc *p, struct cdm_unet_config *c)
{
	static const int64_t def[4] = {224, 448, 672, 896};
	int n;
	const json_t *v = get(p, "block_out_channels", &n);
	if (n)
		return unsupported(p, "block_out_channels", NULL);
	if (!v) {
		c->n_blocks = 4;
		memcpy(c->boc, def, sizeof def);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > CDM_UNET_MAX_BLOCKS)
		return type_err(p, "block_out_channels", "an array of 1 to 8 integers");
	c->n_blocks = (int)json_array_size(v);
	for (int i = 0; i < c->n_blocks; i++) {
		const json_t *e = json_array_get(v, (size_t)i);
		if (!json_is_integer(e) || json_integer_value(e) < 1 ||
		    json_integer_value(e) > 65536)
			return type_err(p, "block_out_channels", "integers in 1..65536");
		c->boc[i] = json_integer_value(e);
	}
	return 0;
}

static int get_sample_size(struct pc *p, struct cdm_unet_config *c)
{
	int n;
	const json_t *v = get(p, "sample_size", &n);
	c->sample_h = c->sample_w = 0;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		c->sample_h = c->sample_w = json_integer_value(v);
	} else if (json_is_array(v) && json_array_size(v) == 2 &&
		   json_is_integer(json_array_get(v, 0)) && json_is_integer(json_array_get(v, 1))) {
		c->sample_h = json_integer_value(json_array_get(v, 0));
		c->sample_w = json_integer_value(json_array_get(v, 1));
	} else {
		return type_err(p, "sample_size", "an integer or [H, W]");
	}
	if (c->sample_h < 1 || c->sample_w < 1 || c->sample_h > 65536 || c->sample_w > 65536)
		return type_err(p, "sample_size", "sizes in 1..65536");
	return 0;
}

static int get_act(struct pc *p, struct cdm_unet_config *c)
{
	const char *s;
	CDM_TRY(get_str(p, "act_fn", "silu", &s));
	if (s && (!strcmp(s, "silu") || !strcmp(s, "swish")))
		c->act = CDM_ACT_SILU;
	else if (s && !strcmp(s, "mish"))
		c->act = CDM_ACT_MISH;
	else if (s && !strcmp(s, "gelu"))
		c->act = CDM_ACT_GELU;
	else if (s && !strcmp(s, "relu"))
		c->act = CDM_ACT_RELU;
	else
		return unsupported(p, "act_fn", s);
	return 0;
}

/* Keys that are strings with a small set of supported values. */
static int get_choices(struct pc *p, struct cdm_unet_config *c)
{
	const char *s;
	CDM_TRY(get_str(p, "time_embedding_type", "positional", &s));
	if (!s || strcmp(s, "positional"))
		return unsupported(p, "time_embedding_type", s);
	CDM_TRY(get_str(p, "resnet_time_scale_shift", "default", &s));
	if (s && !strcmp(s, "default"))
		c->scale_shift = 0;
	else if (s && !strcmp(s, "scale_shift"))
		c->scale_shift = 1;
	else
		return unsupported(p, "resnet_time_scale_shift", s);
	CDM_TRY(get_str(p, "downsample_type", "conv", &s));
	if (!s || (strcmp(s, "conv") && strcmp(s, "resnet")))
		return unsupported(p, "downsample_type", s);
	c->downsample_resnet = !strcmp(s, "resnet");
	CDM_TRY(get_str(p, "upsample_type", "conv", &s));
	if (!s || (strcmp(s, "conv") && strcmp(s, "resnet")))
		return unsupported(p, "upsample_type", s);
	c->upsample_resnet = !strcmp(s, "resnet");
	CDM_TRY(get_str(p, "mid_block_type", "UNetMidBlock2D", &s));
	if (s && strcmp(s, "UNetMidBlock2D"))
		return unsupported(p, "mid_block_type", s);
	c->has_mid = s != NULL;
	CDM_TRY(get_str(p, "class_embed_type", NULL, &s));
	if (s)
		return unsupported(p, "class_embed_type", s);
	const char *cls = NULL;
	CDM_TRY(get_str(p, "_class_name", NULL, &cls));
	if (cls && strcmp(cls, "UNet2DModel"))
		return cdm_fail(p->err, CDM_EINPUT, "%s: _class_name = '%s' is not supported "
				"(UNet2DModel only)", p->what, cls);
	return 0;
}

static int check_positive(struct pc *p, const char *key, int64_t v, int64_t max)
{
	if (v < 1 || v > max)
		return cdm_fail(p->err, CDM_EINPUT, "%s: %s = %lld is out of range 1..%lld",
				p->what, key, (long long)v, (long long)max);
	return 0;
}

static int parse_obj(struct pc *p, struct cdm_unet_config *c)
{
	int n;
	memset(c, 0, sizeof *c);
	CDM_TRY(get_sample_size(p, c));
	CDM_TRY(get_int(p, "in_channels", 3, &c->in_channels, NULL));
	CDM_TRY(check_positive(p, "in_channels", c->in_channels, 4096));
	CDM_TRY(get_int(p, "out_channels", 3, &c->out_channels, NULL));
	CDM_TRY(check_positive(p, "out_channels", c->out_channels, 4096));
	CDM_TRY(get_bool(p, "center_input_sample", 0, &c->center_input_sample));
	CDM_TRY(get_choices(p, c));
	CDM_TRY(get_num(p, "freq_shift", 0, &c->freq_shift));
	CDM_TRY(get_bool(p, "flip_sin_to_cos", 1, &c->flip_sin_to_cos));
	CDM_TRY(get_boc(p, c));
	static const char *const down_def[4] = {"DownBlock2D", "AttnDownBlock2D",
						"AttnDownBlock2D", "AttnDownBlock2D"};
	static const char *const up_def[4] = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
					      "UpBlock2D"};
	int nd, nu;
	CDM_TRY(get_block_types(p, "down_block_types", down_def, 4, "DownBlock2D",
				"AttnDownBlock2D", c->down_attn, &nd));
	CDM_TRY(get_block_types(p, "up_block_types", up_def, 4, "UpBlock2D", "AttnUpBlock2D",
				c->up_attn, &nu));
	if (nd != c->n_blocks || nu != c->n_blocks)
		return cdm_fail(p->err, CDM_EINPUT,
				"%s: %d down blocks and %d up blocks for %d block_out_channels",
				p->what, nd, nu, c->n_blocks);
	CDM_TRY(get_int(p, "time_embedding_dim", 4 * c->boc[0], &c->temb_dim, &n));
	CDM_TRY(check_positive(p, "time_embedding_dim", c->temb_dim, 1 << 20));
	CDM_TRY(get_int(p, "layers_per_block", 2, &c->layers_per_block, NULL));
	CDM_TRY(check_positive(p, "layers_per_block", c->layers_per_block, 64));
	CDM_TRY(get_num(p, "mid_block_scale_factor", 1, &c->mid_block_scale_factor));
	if (c->mid_block_scale_factor == 0)
		return unsupported(p, "mid_block_scale_factor", "0");
	CDM_TRY(get_int(p, "downsample_padding", 1, &c->downsample_padding, NULL));
	if (c->downsample_padding < 0 || c->downsample_padding > 8)
		return cdm_fail(p->err, CDM_EINPUT, "%s: downsample_padding = %lld is not supported",
				p->what, (long long)c->downsample_padding);
	CDM_TRY(get_act(p, c));
	int head_null;
	CDM_TRY(get_int(p, "attention_head_dim", 8, &c->attention_head_dim, &head_null));
	if (head_null)
		c->attention_head_dim = 0;
	else
		CDM_TRY(check_positive(p, "attention_head_dim", c->attention_head_dim, 65536));
	int groups_null;
	CDM_TRY(get_int(p, "norm_num_groups", 32, &c->norm_num_groups, &groups_null));
	if (groups_null)
		return unsupported(p, "norm_num_groups", NULL);
	CDM_TRY(check_positive(p, "norm_num_groups", c->norm_num_groups, 65536));
	CDM_TRY(get_int(p, "attn_norm_num_groups", INT64_MIN, &c->mid_attn_groups, NULL));
	if (c->mid_attn_groups == INT64_MIN)
		/* None: norm_num_groups with "default", no group_norm with scale_shift. */
		c->mid_attn_groups = c->scale_shift ? 0 : c->norm_num_groups;
	else
		CDM_TRY(check_positive(p, "attn_norm_num_groups", c->mid_attn_groups, 65536));
	CDM_TRY(get_num(p, "norm_eps", 1e-5, &c->norm_eps));
	if (!(c->norm_eps > 0))
		return type_err(p, "norm_eps", "a number > 0");
	CDM_TRY(get_bool(p, "add_attention", 1, &c->add_attention));
	int cls_null;
	CDM_TRY(get_int(p, "num_class_embeds", 0, &c->num_class_embeds, &cls_null));
	if (c->num_class_embeds)
		CDM_TRY(check_positive(p, "num_class_embeds", c->num_class_embeds, 1 << 20));
	return 0;
}

int cdm_unet_config_parse(struct cdm_unet_config *cfg, const char *text, size_t len,
			  const char *what, struct cdm_err *err)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return cdm_fail(err, CDM_EINPUT, "%s: line %d column %d: %s", what, je.line,
				je.column, je.text);
	struct pc p = {.obj = root, .what = what, .err = err};
	int rc;
	if (!json_is_object(root)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: not a JSON object", what);
	} else {
		p.use_default = json_object_get(root, "_use_default_values");
		if (p.use_default && !json_is_array(p.use_default))
			p.use_default = NULL;
		rc = parse_obj(&p, cfg);
	}
	json_decref(root);
	return rc;
}

int cdm_unet_config_load(struct cdm_unet_config *cfg, const char *path, struct cdm_err *err)
{
	char *text = NULL;
	size_t len = 0;
	CDM_TRY(cdm_model_read_text(path, CONFIG_MAX_BYTES, &text, &len, err));
	int rc = cdm_unet_config_parse(cfg, text, len, path, err);
	cdm_free(text);
	return rc;
}

static const char *act_name(enum cdm_act a)
{
	switch (a) {
	case CDM_ACT_MISH: return "mish";
	case CDM_ACT_GELU: return "gelu";
	case CDM_ACT_RELU: return "relu";
	default: return "silu";
	}
}

int cdm_unet_config_to_json(const struct cdm_unet_config *c, char **out, struct cdm_err *err)
{
	json_t *o = json_object(), *boc = json_array(), *down = json_array(), *up = json_array();
	json_object_set_new(o, "_class_name", json_string("UNet2DModel"));
	if (c->sample_h)
		json_object_set_new(o, "sample_size",
				    c->sample_h == c->sample_w
					    ? json_integer(c->sample_h)
					    : json_pack("[II]", (json_int_t)c->sample_h,
							(json_int_t)c->sample_w));
	json_object_set_new(o, "in_channels", json_integer(c->in_channels));
	json_object_set_new(o, "out_channels", json_integer(c->out_channels));
	json_object_set_new(o, "center_input_sample", json_boolean(c->center_input_sample));
	json_object_set_new(o, "time_embedding_dim", json_integer(c->temb_dim));
	json_object_set_new(o, "freq_shift", json_real(c->freq_shift));
	json_object_set_new(o, "flip_sin_to_cos", json_boolean(c->flip_sin_to_cos));
	for (int i = 0; i < c->n_blocks; i++) {
		json_array_append_new(boc, json_integer(c->boc[i]));
		json_array_append_new(down, json_string(c->down_attn[i] ? "AttnDownBlock2D"
									: "DownBlock2D"));
		json_array_append_new(up, json_string(c->up_attn[i] ? "AttnUpBlock2D" : "UpBlock2D"));
	}
	json_object_set_new(o, "block_out_channels", boc);
	json_object_set_new(o, "down_block_types", down);
	json_object_set_new(o, "up_block_types", up);
	json_object_set_new(o, "mid_block_type",
			    c->has_mid ? json_string("UNetMidBlock2D") : json_null());
	json_object_set_new(o, "layers_per_block", json_integer(c->layers_per_block));
	json_object_set_new(o, "mid_block_scale_factor", json_real(c->mid_block_scale_factor));
	json_object_set_new(o, "downsample_padding", json_integer(c->downsample_padding));
	json_object_set_new(o, "downsample_type", json_string(c->downsample_resnet ? "resnet" : "conv"));
	json_object_set_new(o, "upsample_type", json_string(c->upsample_resnet ? "resnet" : "conv"));
	json_object_set_new(o, "act_fn", json_string(act_name(c->act)));
	json_object_set_new(o, "attention_head_dim",
			    c->attention_head_dim ? json_integer(c->attention_head_dim) : json_null());
	json_object_set_new(o, "norm_num_groups", json_integer(c->norm_num_groups));
	/* 0 (no mid group_norm) only arises from null with scale_shift. */
	json_object_set_new(o, "attn_norm_num_groups",
			    c->mid_attn_groups ? json_integer(c->mid_attn_groups) : json_null());
	json_object_set_new(o, "norm_eps", json_real(c->norm_eps));
	json_object_set_new(o, "resnet_time_scale_shift",
			    json_string(c->scale_shift ? "scale_shift" : "default"));
	json_object_set_new(o, "add_attention", json_boolean(c->add_attention));
	json_object_set_new(o, "num_class_embeds",
			    c->num_class_embeds ? json_integer(c->num_class_embeds) : json_null());
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (!s)
		return cdm_fail(err, CDM_ENOMEM, "config: cannot serialise");
	size_t n = strlen(s);
	*out = cdm_alloc(n + 1, 1, err);
	if (!*out) {
		free(s);
		return CDM_ENOMEM;
	}
	memcpy(*out, s, n + 1);
	free(s);
	return 0;
}

/* ---- folders ---------------------------------------------------------------- */

int cdm_model_read_text(const char *path, size_t limit, char **out, size_t *len,
			struct cdm_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return cdm_fail(err, CDM_EIO, "%s: cannot open: %m", path);
	char *buf = cdm_alloc(limit + 1, 1, err);
	if (!buf) {
		fclose(f);
		return CDM_ENOMEM;
	}
	size_t n = fread(buf, 1, limit + 1, f); /* one byte more tells "too large" */
	int bad = ferror(f);
	fclose(f);
	if (bad || n > limit) {
		cdm_free(buf);
		if (bad)
			return cdm_fail(err, CDM_EINPUT, "%s: read error", path);
		return cdm_fail(err, CDM_EINPUT, "%s: file too large (over %zu bytes)", path,
				limit);
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

int cdm_model_is_file(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int cdm_model_is_dir(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cdm_model_join(char *out, const char *dir, const char *name, struct cdm_err *err)
{
	int n = snprintf(out, CDM_PATH_MAX, "%s/%s", dir, name);
	if (n < 0 || n >= CDM_PATH_MAX)
		return cdm_fail(err, CDM_EINPUT, "%s: path too long", dir);
	return 0;
}

int cdm_model_locate(struct cdm_model_paths *p, const char *dir, struct cdm_err *err)
{
	char unet[CDM_PATH_MAX], sched[CDM_PATH_MAX], tmp[CDM_PATH_MAX];
	memset(p, 0, sizeof *p);
	if (!cdm_model_is_dir(dir))
		return cdm_fail(err, CDM_EINPUT, "%s: not a model directory", dir);
	snprintf(unet, sizeof unet, "%s", dir);
	snprintf(sched, sizeof sched, "%s", dir);
	CDM_TRY(cdm_model_join(tmp, dir, "model_index.json", err));
	if (cdm_model_is_file(tmp)) {
		/* Pipeline: components in subfolders, or at the root if absent. */
		CDM_TRY(cdm_model_join(tmp, dir, "unet", err));
		if (cdm_model_is_dir(tmp))
			snprintf(unet, sizeof unet, "%s", tmp);
		CDM_TRY(cdm_model_join(tmp, dir, "scheduler", err));
		if (cdm_model_is_dir(tmp))
			snprintf(sched, sizeof sched, "%s", tmp);
	}
	CDM_TRY(cdm_model_join(p->config, unet, "config.json", err));
	if (!cdm_model_is_file(p->config))
		return cdm_fail(err, CDM_EINPUT, "%s: no config.json (not a diffusers model folder)",
				unet);
	CDM_TRY(cdm_model_join(p->weights, unet, "diffusion_pytorch_model.safetensors", err));
	if (!cdm_model_is_file(p->weights)) {
		CDM_TRY(cdm_model_join(p->weights, unet, "diffusion_pytorch_model.fp16.safetensors",
				       err));
		if (!cdm_model_is_file(p->weights)) {
			CDM_TRY(cdm_model_join(tmp, unet, "diffusion_pytorch_model.bin", err));
			return cdm_fail(err, CDM_EINPUT, "%s: no diffusion_pytorch_model.safetensors%s",
					unet,
					cdm_model_is_file(tmp) ? " (pickle .bin files are not supported)"
							       : "");
		}
	}
	CDM_TRY(cdm_model_join(p->sched_config, sched, "scheduler_config.json", err));
	if (!cdm_model_is_file(p->sched_config))
		p->sched_config[0] = 0;
	return 0;
}
