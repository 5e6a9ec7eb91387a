/*
 * test_unet: the UNet2DModel forward against every golden case under
 * tests/golden/ (or $CDM_GOLDEN_DIR): a diffusers folder plus io.safetensors
 * with x, t, optional labels and the expected eps (computed in float64 by
 * the PyTorch implementation). Error measure: max relative error
 * ||out - eps||_inf / ||eps||_inf, required < 1e-5. Fails if no case exists.
 * Also: hostile inputs give clean errors (wrong shape, missing label).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fmt/st.h"
#include "model/config.h"
#include "model/unet.h"
#include "nn/nn.h"

/* Read an integer or float vector tensor of n elements as doubles. */
static int read_vec(const cdm_st *st, const char *name, int64_t n, double *out)
{
	const struct cdm_st_tensor *t = cdm_st_find(st, name);
	if (!t || (int64_t)t->numel != n)
		return -1;
	for (int64_t i = 0; i < n; i++) {
		if (t->dtype == CDM_I64) {
			int64_t v;
			memcpy(&v, t->data + 8 * i, 8);
			out[i] = (double)v;
		} else if (t->dtype == CDM_F32) {
			float v;
			memcpy(&v, t->data + 4 * i, 4);
			out[i] = v;
		} else if (t->dtype == CDM_I32) {
			int32_t v;
			memcpy(&v, t->data + 4 * i, 4);
			out[i] = v;
		} else {
			return -1;
		}
	}
	return 0;
}

static double run_case(const char *dir, const char *name)
{
	char path[4200];
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	cdm_st *io = NULL;
	cdm_tensor *x = NULL, *lab = NULL, *out = NULL;
	float *xv = NULL, *ev = NULL;
	double rel = 1e9;
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_unet_load(&u, nn, dir, NULL, &err) < 0 ||
	    cdm_st_open(&io, path, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	const struct cdm_st_tensor *xt = cdm_st_find(io, "x"), *et = cdm_st_find(io, "eps");
	if (!xt || !et || xt->ndim != 4 || et->ndim != 4) {
		fprintf(stderr, "%s: io.safetensors lacks x or eps\n", name);
		goto done;
	}
	int64_t B = xt->shape[0];
	double t[64];
	int64_t labels[64];
	double lv[64];
	if (B > 64 || read_vec(io, "t", B, t) < 0) {
		fprintf(stderr, "%s: bad t\n", name);
		goto done;
	}
	if (cdm_st_load_f32(io, "x", 4, xt->shape, &xv, &err) < 0 ||
	    cdm_st_load_f32(io, "eps", 4, et->shape, &ev, &err) < 0 ||
	    cdm_nn_public(nn, 4, xt->shape, xv, &x, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	if (cdm_st_find(io, "labels")) {
		if (read_vec(io, "labels", B, lv) < 0) {
			fprintf(stderr, "%s: bad labels\n", name);
			goto done;
		}
		for (int64_t b = 0; b < B; b++)
			labels[b] = (int64_t)lv[b];
		if (cdm_nn_onehot(nn, labels, B, cdm_unet_config(u)->num_class_embeds, &lab, &err) < 0) {
			fprintf(stderr, "%s: %s\n", name, err.msg);
			goto done;
		}
	}
	double t0 = cdm_now();
	if (cdm_unet_forward(u, x, t, lab, &out, &err) < 0) {
		fprintf(stderr, "%s: forward: %s\n", name, err.msg);
		goto done;
	}
	double secs = cdm_now() - t0;
	const float *o = cdm_nn_plain_data(out);
	int64_t n = cdm_tensor_numel(out);
	if (n != (int64_t)et->numel) {
		fprintf(stderr, "%s: output has %lld elements, eps %lld\n", name, (long long)n,
			(long long)et->numel);
		goto done;
	}
	double maxd = 0, maxe = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)o[i] - ev[i]);
		maxd = d > maxd ? d : maxd;
		maxe = fabs(ev[i]) > maxe ? fabs(ev[i]) : maxe;
	}
	rel = maxd / (maxe > 0 ? maxe : 1);
	fprintf(stderr, "%-14s params %8lld  max rel err %.3g  (%.1f ms)\n", name,
		(long long)cdm_unet_params(u), rel, secs * 1e3);
done:
	cdm_free(xv);
	cdm_free(ev);
	if (nn) {
		cdm_nn_free(nn, x);
		cdm_nn_free(nn, lab);
		cdm_nn_free(nn, out);
	}
	cdm_unet_free(u);
	if (io)
		cdm_st_close(io);
	cdm_nn_plain_free(nn);
	return rel;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Bad inputs: a wrong channel count, an odd size, a missing label, a missing
 * folder -- each a clean error with a message. */
static void hostile(const char *root)
{
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/f_classes", root);
	CHECK(cdm_nn_plain_new(&nn, &err) == 0, "plain backend");
	CHECK(cdm_unet_load(&u, nn, "/nonexistent/model", NULL, &err) == CDM_EINPUT &&
		      strstr(err.msg, "/nonexistent/model"),
	      "missing folder: %s", err.msg);
	if (cdm_unet_load(&u, nn, dir, NULL, &err) < 0) {
		CHECK(0, "load %s: %s", dir, err.msg);
		cdm_nn_plain_free(nn);
		return;
	}
	const struct cdm_unet_config *c = cdm_unet_config(u);
	int64_t shp[4] = {1, c->in_channels + 1, c->sample_h, c->sample_w};
	CHECK(cdm_unet_check_input(u, 4, shp, &err) == CDM_EINPUT && strstr(err.msg, "x: shape"),
	      "channel mismatch: %s", err.msg);
	shp[1] = c->in_channels;
	shp[2] = c->sample_h + 1;
	CHECK(cdm_unet_check_input(u, 4, shp, &err) == CDM_EINPUT && strstr(err.msg, "halve"),
	      "odd size: %s", err.msg);
	shp[2] = c->sample_h;
	float *z = calloc((size_t)(shp[1] * shp[2] * shp[3]), sizeof *z);
	cdm_tensor *x = NULL, *out = NULL;
	double t = 10;
	CHECK(cdm_nn_public(nn, 4, shp, z, &x, &err) == 0, "input");
	CHECK(cdm_unet_forward(u, x, &t, NULL, &out, &err) == CDM_EINPUT &&
		      strstr(err.msg, "label") && !out,
	      "missing label: %s", err.msg);
	cdm_nn_free(nn, x);
	free(z);
	cdm_unet_free(u);
	cdm_nn_plain_free(nn);
}

/* Config parsing: defaults of diffusers.md §2.1, null rules, refusals. */
static void config_rules(void)
{
	struct cdm_unet_config c;
	struct cdm_err err = {0};
	const char *j = "{}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == 0, "{}: %s", err.msg);
	CHECK(c.n_blocks == 4 && c.boc[0] == 224 && c.boc[3] == 896 && c.attention_head_dim == 8 &&
		      c.norm_num_groups == 32 && c.mid_attn_groups == 32 && c.layers_per_block == 2 &&
		      c.flip_sin_to_cos && c.freq_shift == 0 && c.norm_eps == 1e-5 &&
		      c.downsample_padding == 1 && c.has_mid && c.add_attention && c.temb_dim == 896 &&
		      !c.down_attn[0] && c.down_attn[1] && c.up_attn[0] && !c.up_attn[3] &&
		      c.in_channels == 3 && c.act == CDM_ACT_SILU && !c.num_class_embeds,
	      "defaults");
	j = "{\"attention_head_dim\":null,\"resnet_time_scale_shift\":\"scale_shift\","
	    "\"attn_norm_num_groups\":null,\"act_fn\":\"swish\",\"whatever\":[1],"
	    "\"_use_default_values\":[\"norm_eps\"],\"norm_eps\":0.5}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == 0 &&
		      c.attention_head_dim == 0 && c.mid_attn_groups == 0 && c.scale_shift &&
		      c.norm_eps == 1e-5 && c.act == CDM_ACT_SILU,
	      "nulls and _use_default_values: %s", err.msg);
	j = "{\"down_block_types\":[\"DownBlock2D\",\"CrossAttnDownBlock2D\",\"DownBlock2D\","
	    "\"DownBlock2D\"]}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == CDM_EINPUT &&
		      !strcmp(err.msg, "config.json: down_block_types[1] = 'CrossAttnDownBlock2D' "
				       "is not supported"),
	      "cross-attention refused: %s", err.msg);
	j = "{\"time_embedding_type\":\"fourier\"}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == CDM_EINPUT &&
		      strstr(err.msg, "time_embedding_type = 'fourier'"),
	      "fourier refused: %s", err.msg);
	j = "{\"block_out_channels\":[4,8],\"down_block_types\":[\"DownBlock2D\"]}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == CDM_EINPUT,
	      "block count mismatch: %s", err.msg);
	j = "{\"act_fn\":\"tanh\"}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == CDM_EINPUT &&
		      strstr(err.msg, "act_fn = 'tanh'"), "act refused: %s", err.msg);
	j = "{\"layers_per_block\":\"2\"}";
	CHECK(cdm_unet_config_parse(&c, j, strlen(j), "config.json", &err) == CDM_EINPUT &&
		      strstr(err.msg, "layers_per_block"), "type error: %s", err.msg);
	CHECK(cdm_unet_config_parse(&c, "{\"a\":", 5, "config.json", &err) == CDM_EINPUT &&
		      strstr(err.msg, "config.json: line"), "syntax error: %s", err.msg);
}

/* A pipeline folder (model_index.json + unet/), and a weight file that does
 * not fit the config (clean shape message). */
static void folders(const char *root)
{
	struct cdm_err err = {0};
	char tmpl[] = "/tmp/cdm-test-unet-XXXXXX", path[8600], src[4200];
	char *d = mkdtemp(tmpl);
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	CHECK(d != NULL, "mkdtemp");
	if (!d || cdm_nn_plain_new(&nn, &err) < 0)
		return;
	snprintf(path, sizeof path, "%s/model_index.json", d);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs("{\"_class_name\":\"DDPMPipeline\"}", f);
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/unet", d);
	char *abs = realpath(root, NULL);
	snprintf(src, sizeof src, "%s/a_headdim3", abs ? abs : root);
	free(abs);
	CHECK(symlink(src, path) == 0, "symlink");
	struct cdm_model_paths p;
	CHECK(cdm_unet_load(&u, nn, d, &p, &err) == 0 && strstr(p.config, "/unet/config.json") &&
		      p.sched_config[0] == 0,
	      "pipeline folder: %s", err.msg);
	cdm_unet_free(u);
	u = NULL;
	/* the a_headdim3 weights with a config that wants 12 channels */
	struct cdm_unet_config c = {0};
	snprintf(path, sizeof path, "%s/config.json", src);
	CHECK(cdm_unet_config_load(&c, path, &err) == 0, "config: %s", err.msg);
	c.boc[0] = 12;
	CHECK(cdm_unet_new(&u, nn, &c, &err) == CDM_EINPUT && !u && strstr(err.msg, "conv_in.weight") &&
		      strstr(err.msg, "[12,3,3,3]"),
	      "shape mismatch: %s", err.msg);
	snprintf(path, sizeof path, "%s/unet", d);
	unlink(path);
	snprintf(path, sizeof path, "%s/model_index.json", d);
	unlink(path);
	rmdir(d);
	cdm_nn_plain_free(nn);
}

int main(void)
{
	check_seed();
	const char *root = getenv("CDM_GOLDEN_DIR") ? getenv("CDM_GOLDEN_DIR") : "tests/golden";
	DIR *d = opendir(root);
	CHECK(d != NULL, "cannot open %s (run from the repository root)", root);
	if (!d)
		return check_done();
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		char p[8400];
		snprintf(p, sizeof p, "%s/%s/io.safetensors", root, e->d_name);
		if (e->d_name[0] != '.' && access(p, R_OK) == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof *names, cmp_str);
	CHECK(n > 0, "no golden case found under %s", root);
	for (int i = 0; i < n; i++) {
		char dir[4096];
		if (snprintf(dir, sizeof dir, "%s/%s", root, names[i]) >= (int)sizeof dir)
			continue;
		double rel = run_case(dir, names[i]);
		CHECK(rel < 1e-5, "%s: max relative error %.3g >= 1e-5", names[i], rel);
		free(names[i]);
	}
	if (n > 0) {
		hostile(root);
		folders(root);
	}
	config_rules();
	return check_done();
}
