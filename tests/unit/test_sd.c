/*
 * test_sd: the Stable Diffusion components against the PyTorch goldens in
 * tests/golden_sd/ (or $CDM_GOLDEN_SD_DIR), written by
 * scripts/train/make_sd_goldens.py:
 *   UNet2DConditionModel cases (config _class_name UNet2DConditionModel),
 *   AutoencoderKL decode cases (AutoencoderKL), CLIPTextModel cases
 *   (model.safetensors) and the tokenizer case (vocab.json).
 * Error measure: max relative error ||out - ref||_inf / ||ref||_inf < 1e-5
 * (references computed in float64). Fails if a kind has no case.
 * Also: the new nn ops against direct formulas, and hostile inputs (wrong
 * shapes, missing context, bad configs) give clean errors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "fmt/st.h"
#include "model/clip.h"
#include "model/sd_config.h"
#include "model/tokenizer.h"
#include "model/unet_cond.h"
#include "model/vae.h"
#include "nn/nn.h"

#define TOL 1e-5

static double rel_err(const float *out, const float *ref, int64_t n)
{
	double maxd = 0, maxe = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)out[i] - ref[i]);
		if (d != d)
			return 1e9; /* NaN */
		maxd = d > maxd ? d : maxd;
		maxe = fabs(ref[i]) > maxe ? fabs(ref[i]) : maxe;
	}
	return maxd / (maxe > 0 ? maxe : 1);
}

/* Load float tensor `name` of io as a new plain tensor (any rank <= 4). */
static int load_t(cdm_nn *nn, const cdm_st *io, const char *name, cdm_tensor **out,
		  float **raw, struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_st_find(io, name);
	float *d = NULL;
	if (!t || t->ndim < 1 || t->ndim > 4)
		return cdm_fail(err, CDM_EINPUT, "io: no usable tensor '%s'", name);
	CDM_TRY(cdm_st_load_f32(io, name, t->ndim, t->shape, &d, err));
	int rc = out ? cdm_nn_public(nn, t->ndim, t->shape, d, out, err) : 0;
	if (raw && rc == 0)
		*raw = d;
	else
		cdm_free(d);
	return rc;
}

/* Integer tensor (I64) as int64 values; *n receives the count. */
static int64_t *load_i64(const cdm_st *io, const char *name, int64_t *n)
{
	const struct cdm_st_tensor *t = cdm_st_find(io, name);
	if (!t || t->dtype != CDM_I64)
		return NULL;
	int64_t *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
	if (v)
		memcpy(v, t->data, t->numel * 8);
	*n = (int64_t)t->numel;
	return v;
}

/* ---- UNet2DConditionModel ------------------------------------------------- */

static double run_unet(const char *dir, const char *name)
{
	char path[4400];
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_unet_cond *u = NULL;
	cdm_st *io = NULL;
	cdm_tensor *x = NULL, *ctx = NULL, *out = NULL;
	float *ref = NULL;
	int64_t *tv = NULL, nt = 0;
	double rel = 1e9, t[64];
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_unet_cond_load(&u, nn, dir, NULL, &err) < 0 ||
	    cdm_st_open(&io, path, &err) < 0 || load_t(nn, io, "x", &x, NULL, &err) < 0 ||
	    load_t(nn, io, "ctx", &ctx, NULL, &err) < 0 ||
	    load_t(nn, io, "eps", NULL, &ref, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	tv = load_i64(io, "t", &nt);
	if (!tv || nt != x->dim[0] || nt > 64) {
		fprintf(stderr, "%s: bad t\n", name);
		goto done;
	}
	for (int64_t i = 0; i < nt; i++)
		t[i] = (double)tv[i];
	double t0 = cdm_now();
	if (cdm_unet_cond_forward(u, x, t, ctx, &out, &err) < 0) {
		fprintf(stderr, "%s: forward: %s\n", name, err.msg);
		goto done;
	}
	rel = rel_err(cdm_nn_plain_data(out), ref, cdm_tensor_numel(out));
	fprintf(stderr, "%-12s UNet2DConditionModel params %7lld  max rel err %.3g  (%.1f ms)\n",
		name, (long long)cdm_unet_cond_params(u), rel, (cdm_now() - t0) * 1e3);
	/* the context matters: a zero context gives a different output */
	cdm_tensor *z = NULL, *o2 = NULL;
	if (cdm_nn_scale(nn, ctx, 0.0, 0.0, &z, &err) == 0 &&
	    cdm_unet_cond_forward(u, x, t, z, &o2, &err) == 0)
		CHECK(rel_err(cdm_nn_plain_data(o2), ref, cdm_tensor_numel(o2)) > 1e-3,
		      "%s: output does not depend on the context", name);
	cdm_nn_free(nn, z);
	cdm_nn_free(nn, o2);
done:
	free(tv);
	cdm_free(ref);
	if (nn) {
		cdm_nn_free(nn, x);
		cdm_nn_free(nn, ctx);
		cdm_nn_free(nn, out);
	}
	cdm_unet_cond_free(u);
	if (io)
		cdm_st_close(io);
	cdm_nn_plain_free(nn);
	return rel;
}

/* ---- AutoencoderKL decode ------------------------------------------------- */

static double run_vae(const char *dir, const char *name)
{
	char path[4400];
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_vae *v = NULL;
	cdm_st *io = NULL;
	cdm_tensor *z = NULL, *out = NULL;
	float *ref = NULL;
	double rel = 1e9;
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_vae_load(&v, nn, dir, &err) < 0 ||
	    cdm_st_open(&io, path, &err) < 0 || load_t(nn, io, "z", &z, NULL, &err) < 0 ||
	    load_t(nn, io, "x", NULL, &ref, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	double t0 = cdm_now();
	if (cdm_vae_decode(v, z, &out, &err) < 0) {
		fprintf(stderr, "%s: decode: %s\n", name, err.msg);
		goto done;
	}
	rel = rel_err(cdm_nn_plain_data(out), ref, cdm_tensor_numel(out));
	fprintf(stderr, "%-12s AutoencoderKL.decode  params %7lld  max rel err %.3g  (%.1f ms)\n",
		name, (long long)cdm_vae_params(v), rel, (cdm_now() - t0) * 1e3);
done:
	cdm_free(ref);
	if (nn) {
		cdm_nn_free(nn, z);
		cdm_nn_free(nn, out);
	}
	cdm_vae_free(v);
	if (io)
		cdm_st_close(io);
	cdm_nn_plain_free(nn);
	return rel;
}

/* ---- CLIPTextModel ---------------------------------------------------------- */

static double run_clip(const char *dir, const char *name)
{
	char path[4400];
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_clip *c = NULL;
	cdm_st *io = NULL;
	cdm_tensor *out = NULL;
	float *ref = NULL;
	int64_t *ids = NULL, n = 0;
	double rel = 1e9;
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_clip_load(&c, nn, dir, &err) < 0 ||
	    cdm_st_open(&io, path, &err) < 0 || load_t(nn, io, "ctx", NULL, &ref, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	const struct cdm_st_tensor *it = cdm_st_find(io, "ids");
	if (!(ids = load_i64(io, "ids", &n)) || it->ndim != 2) {
		fprintf(stderr, "%s: bad ids\n", name);
		goto done;
	}
	double t0 = cdm_now();
	if (cdm_clip_encode_ids(c, ids, it->shape[0], it->shape[1], &out, &err) < 0) {
		fprintf(stderr, "%s: encode: %s\n", name, err.msg);
		goto done;
	}
	rel = rel_err(cdm_nn_plain_data(out), ref, cdm_tensor_numel(out));
	fprintf(stderr, "%-12s CLIPTextModel         params %7lld  max rel err %.3g  (%.1f ms)\n",
		name, (long long)cdm_clip_params(c), rel, (cdm_now() - t0) * 1e3);
	/* out-of-vocabulary id: a clean error */
	ids[0] = cdm_clip_config(c)->vocab_size;
	cdm_tensor *o2 = NULL;
	CHECK(cdm_clip_encode_ids(c, ids, it->shape[0], it->shape[1], &o2, &err) == CDM_EINPUT &&
		      strstr(err.msg, "id"),
	      "%s: out-of-range id accepted or bad message: %s", name, err.msg);
	cdm_nn_free(nn, o2);
done:
	free(ids);
	cdm_free(ref);
	if (nn)
		cdm_nn_free(nn, out);
	cdm_clip_free(c);
	if (io)
		cdm_st_close(io);
	cdm_nn_plain_free(nn);
	return rel;
}

/* ---- tokenizer -------------------------------------------------------------- */

/* 0 if every prompt of prompts.txt tokenizes to the expected ids. */
static double run_tok(const char *dir, const char *name)
{
	char path[4400];
	struct cdm_err err = {0};
	cdm_tokenizer *tk = NULL;
	cdm_st *io = NULL;
	FILE *f = NULL;
	int64_t *want = NULL, n = 0, got[77];
	double bad = 1e9;
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_tokenizer_load(&tk, dir, &err) < 0 || cdm_st_open(&io, path, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	const struct cdm_st_tensor *it = cdm_st_find(io, "ids");
	if (!(want = load_i64(io, "ids", &n)) || it->ndim != 2 || it->shape[1] != 77 ||
	    cdm_tokenizer_length(tk) != 77) {
		fprintf(stderr, "%s: bad ids or length\n", name);
		goto done;
	}
	snprintf(path, sizeof path, "%s/prompts.txt", dir);
	if (!(f = fopen(path, "r"))) {
		fprintf(stderr, "%s: no prompts.txt\n", name);
		goto done;
	}
	char line[8192];
	int64_t p = 0, mism = 0;
	for (; fgets(line, sizeof line, f) && p < it->shape[0]; p++) {
		line[strcspn(line, "\n")] = 0;
		if (cdm_tokenizer_encode(tk, line, got, 77, &err) < 0) {
			fprintf(stderr, "%s: prompt %lld: %s\n", name, (long long)p, err.msg);
			mism++;
			continue;
		}
		for (int i = 0; i < 77; i++)
			if (got[i] != want[p * 77 + i]) {
				fprintf(stderr, "%s: prompt %lld '%s': id %d is %lld, expected %lld\n",
					name, (long long)p, line, i, (long long)got[i],
					(long long)want[p * 77 + i]);
				mism++;
				break;
			}
	}
	CHECK(p == it->shape[0], "%s: %lld prompts, %lld expected rows", name, (long long)p,
	      (long long)it->shape[0]);
	fprintf(stderr, "%-12s CLIP tokenizer: %lld prompts, %lld mismatches\n", name,
		(long long)p, (long long)mism);
	bad = mism ? 1.0 : 0.0;
done:
	if (f)
		fclose(f);
	free(want);
	cdm_tokenizer_free(tk);
	if (io)
		cdm_st_close(io);
	return bad;
}

/* ---- nn ops added for SD ---------------------------------------------------- */

static void test_ops(void)
{
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	uint64_t s = check_seed();
	CHECK(cdm_nn_plain_new(&nn, &err) == 0, "plain backend");
	enum { B = 2, N = 5, I = 6, H = 2 };
	float qv[B * N * I], kv[B * N * I], vv[B * N * I];
	for (int i = 0; i < B * N * I; i++) {
		qv[i] = (float)check_uniform(&s, -2, 2);
		kv[i] = (float)check_uniform(&s, -2, 2);
		vv[i] = (float)check_uniform(&s, -2, 2);
	}
	int64_t d[3] = {B, N, I};
	cdm_tensor *q = NULL, *k = NULL, *v = NULL, *o = NULL, *r = NULL, *a = NULL;
	cdm_nn_public(nn, 3, d, qv, &q, &err);
	cdm_nn_public(nn, 3, d, kv, &k, &err);
	cdm_nn_public(nn, 3, d, vv, &v, &err);
	double scale = 0.7;
	CHECK(cdm_nn_attention_causal(nn, q, k, v, H, scale, &o, &err) == 0, "causal: %s", err.msg);
	/* direct formula in double: query i attends keys j <= i */
	double maxd = 0;
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int i = 0; i < N; i++) {
				double sc[N], mx = -1e300, sum = 0;
				for (int j = 0; j <= i; j++) {
					double acc = 0;
					for (int c = 0; c < I / H; c++)
						acc += (double)qv[(b * N + i) * I + h * 3 + c] *
						       kv[(b * N + j) * I + h * 3 + c];
					sc[j] = acc * scale;
					mx = sc[j] > mx ? sc[j] : mx;
				}
				for (int j = 0; j <= i; j++)
					sum += sc[j] = exp(sc[j] - mx);
				for (int c = 0; c < I / H; c++) {
					double acc = 0;
					for (int j = 0; j <= i; j++)
						acc += sc[j] / sum * vv[(b * N + j) * I + h * 3 + c];
					double dd = fabs(acc - cdm_nn_plain_data(o)[(b * N + i) * I + h * 3 + c]);
					maxd = dd > maxd ? dd : maxd;
				}
			}
	CHECK(maxd < 1e-5, "causal attention differs from the formula by %g", maxd);
	/* row 0 of the causal result is v's row 0 exactly (softmax of one key) */
	CHECK(fabsf(cdm_nn_plain_data(o)[0] - vv[0]) < 1e-6, "causal row 0");
	/* reshape keeps the order; a wrong element count is refused */
	int64_t d2[2] = {B * N, I}, bad[2] = {B * N, I + 1};
	CHECK(cdm_nn_reshape(nn, q, 2, d2, &r, &err) == 0 && r->ndim == 2 &&
		      !memcmp(cdm_nn_plain_data(r), qv, sizeof qv),
	      "reshape");
	CHECK(cdm_nn_reshape(nn, q, 2, bad, &a, &err) == CDM_EINPUT && strstr(err.msg, "reshape"),
	      "reshape with a wrong count: %s", err.msg);
	cdm_tensor *k4 = NULL;
	int64_t d4[3] = {B, N - 1, I};
	cdm_nn_public(nn, 3, d4, kv, &k4, &err);
	CHECK(cdm_nn_attention_causal(nn, q, k4, k4, H, 1, &a, &err) == CDM_EINPUT,
	      "causal attention with a different key length must be refused");
	/* quick_gelu */
	float xs[4] = {-3.0f, -0.5f, 0.0f, 2.5f};
	int64_t d1[1] = {4};
	cdm_tensor *xt = NULL, *yt = NULL;
	cdm_nn_public(nn, 1, d1, xs, &xt, &err);
	CHECK(cdm_nn_act(nn, xt, CDM_ACT_QUICK_GELU, &yt, &err) == 0, "quick_gelu");
	for (int i = 0; yt && i < 4; i++)
		CHECK_NEAR(cdm_nn_plain_data(yt)[i], xs[i] / (1 + exp(-1.702 * xs[i])), 1e-6,
			   "quick_gelu value");
	/* a backend that lacks an optional op: a clear error, no crash */
	struct cdm_nn_ops ops = *nn->ops;
	ops.attention_causal = NULL;
	ops.reshape = NULL;
	ops.name = "partial";
	cdm_nn fake = {&ops, nn->ctx};
	CHECK(cdm_nn_attention_causal(&fake, q, k, v, H, 1, &a, &err) == CDM_EINPUT &&
		      strstr(err.msg, "partial backend does not support op attention_causal"),
	      "missing op message: %s", err.msg);
	CHECK(cdm_nn_reshape(&fake, q, 2, d2, &a, &err) == CDM_EINPUT && strstr(err.msg, "reshape"),
	      "missing reshape message: %s", err.msg);
	cdm_tensor *all[] = {q, k, v, o, r, k4, xt, yt};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		cdm_nn_free(nn, all[i]);
	cdm_nn_plain_free(nn);
}

/* ---- hostile inputs ------------------------------------------------------------ */

/* cfg parse must fail with a message containing `want`. */
static void refuse(int which, const char *json, const char *want)
{
	struct cdm_err err = {0};
	struct cdm_unet_cond_config u;
	struct cdm_vae_config v;
	struct cdm_clip_config c;
	int rc = which == 0   ? cdm_unet_cond_config_parse(&u, json, strlen(json), "cfg", &err)
		 : which == 1 ? cdm_vae_config_parse(&v, json, strlen(json), "cfg", &err)
			      : cdm_clip_config_parse(&c, json, strlen(json), "cfg", &err);
	CHECK(rc == CDM_EINPUT && strstr(err.msg, want), "config %s: rc %d, message '%s', "
	      "expected '%s'", json, rc, err.msg, want);
}

static void hostile(const char *root)
{
	struct cdm_err err = {0};
	refuse(0, "{\"transformer_layers_per_block\": 2}", "transformer_layers_per_block");
	refuse(0, "{\"transformer_layers_per_block\": [1, 2, 1, 1]}", "transformer_layers_per_block");
	refuse(0, "{\"num_attention_heads\": 8}", "num_attention_heads");
	refuse(0, "{\"act_fn\": \"gelu\"}", "act_fn");
	refuse(0, "{\"_class_name\": \"UNet2DModel\"}", "UNet2DConditionModel");
	refuse(0, "{\"only_cross_attention\": true}", "only_cross_attention");
	refuse(0, "{\"addition_embed_type\": \"text_time\"}", "addition_embed_type");
	refuse(0, "{\"block_out_channels\": [4, 8], \"attention_head_dim\": [1, 2, 3], "
	       "\"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"], "
	       "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"]}",
	       "attention_head_dim has 3 entries for 2 blocks");
	refuse(0, "{\"down_block_types\": [\"AttnDownBlock2D\"]}", "down_block_types[0]");
	refuse(0, "{\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"}", "mid_block_type");
	refuse(1, "{\"up_block_types\": [\"UpDecoderBlock2D\"], \"block_out_channels\": [4, 8]}",
	       "up blocks");
	refuse(1, "{\"act_fn\": \"relu\"}", "act_fn");
	refuse(2, "{\"hidden_size\": 10, \"num_attention_heads\": 3}", "num_attention_heads");
	refuse(2, "{\"hidden_act\": \"relu\"}", "hidden_act");
	refuse(2, "[1, 2]", "not a JSON object");
	/* defaults: SD1.5 UNet sizes from an empty config; a nested CLIPModel config */
	struct cdm_unet_cond_config u;
	CHECK(cdm_unet_cond_config_parse(&u, "{}", 2, "cfg", &err) == 0 && u.n_blocks == 4 &&
		      u.boc[3] == 1280 && u.heads[0] == 8 && u.cross_dim[0] == 1280 &&
		      u.down_cross[0] == 1 && !u.down_cross[3] && !u.up_cross[0] && u.has_mid &&
		      u.temb_dim == 1280,
	      "UNet2DConditionModel defaults");
	struct cdm_clip_config c;
	const char *nested = "{\"text_config\": {\"hidden_size\": 768, \"num_attention_heads\": 12}}";
	CHECK(cdm_clip_config_parse(&c, nested, strlen(nested), "cfg", &err) == 0 &&
		      c.hidden_size == 768 && c.num_heads == 12 && c.vocab_size == 49408 &&
		      c.max_positions == 77 && c.quick_gelu,
	      "CLIP defaults / text_config");

	/* shapes: a UNet without context, a wrong context, a size that does not halve */
	char dir[4200];
	snprintf(dir, sizeof dir, "%.4000s/u_fasttest", root);
	cdm_nn *nn = NULL;
	cdm_unet_cond *un = NULL;
	cdm_vae *va = NULL;
	cdm_tensor *x = NULL, *ctx = NULL, *out = NULL;
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_unet_cond_load(&un, nn, dir, NULL, &err) < 0) {
		CHECK(0, "u_fasttest: %s", err.msg);
		goto done;
	}
	static float zeros[2 * 4 * 10 * 10 + 2 * 3 * 9];
	int64_t xd[4] = {2, 4, 8, 8}, xbad[4] = {2, 4, 9, 9}, cd[3] = {2, 3, 8}, cbad[3] = {1, 3, 8};
	cdm_nn_public(nn, 4, xd, zeros, &x, &err);
	cdm_nn_public(nn, 3, cd, zeros, &ctx, &err);
	double t[2] = {1, 2};
	CHECK(cdm_unet_cond_forward(un, x, t, NULL, &out, &err) == CDM_EINPUT &&
		      strstr(err.msg, "context"), "no context: %s", err.msg);
	cdm_tensor *cb = NULL, *xb = NULL;
	cdm_nn_public(nn, 3, cbad, zeros, &cb, &err);
	CHECK(cdm_unet_cond_forward(un, x, t, cb, &out, &err) == CDM_EINPUT &&
		      strstr(err.msg, "ctx: shape [1,3,8], expected [2,L,8]"), "bad ctx: %s", err.msg);
	cdm_nn_public(nn, 4, xbad, zeros, &xb, &err);
	CHECK(cdm_unet_cond_forward(un, xb, t, ctx, &out, &err) == CDM_EINPUT &&
		      strstr(err.msg, "halve"), "9x9 accepted or bad message: %s", err.msg);
	CHECK(cdm_unet_cond_forward(un, x, t, ctx, &out, &err) == 0, "a good call: %s", err.msg);
	CHECK(cdm_unet_cond_ctx_dim(un) == 8, "ctx dim");
	cdm_nn_free(nn, out), out = NULL;
	/* the VAE refuses the UNet's folder and a wrong latent */
	CHECK(cdm_vae_load(&va, nn, dir, &err) == CDM_EINPUT && strstr(err.msg, "AutoencoderKL"),
	      "vae on a unet folder: %s", err.msg);
	cdm_vae_free(va), va = NULL;
	snprintf(dir, sizeof dir, "%.4000s/v_fasttest", root);
	cdm_nn *nn2 = NULL;
	cdm_nn_plain_new(&nn2, &err);
	CHECK(cdm_vae_load(&va, nn2, dir, &err) == 0, "vae: %s", err.msg);
	if (va) {
		cdm_tensor *z3 = NULL, *o3 = NULL;
		int64_t zd[4] = {1, 3, 4, 4};
		cdm_nn_public(nn2, 4, zd, zeros, &z3, &err);
		CHECK(cdm_vae_decode(va, z3, &o3, &err) == CDM_EINPUT &&
			      strstr(err.msg, "expected [B,4,h,w]"), "vae latent: %s", err.msg);
		cdm_nn_free(nn2, z3);
		cdm_nn_free(nn2, o3);
	}
	cdm_vae_free(va);
	cdm_nn_plain_free(nn2);
	cdm_nn_free(nn, cb);
	cdm_nn_free(nn, xb);
	/* tokenizer: a vocabulary without BOS/EOS is refused; known ids */
	cdm_tokenizer *tk = NULL;
	snprintf(dir, sizeof dir, "%.4000s/tok", root);
	if (cdm_tokenizer_load(&tk, dir, &err) == 0) {
		int64_t ids[77];
		CHECK(cdm_tokenizer_encode(tk, "", ids, 77, &err) == 0 &&
			      ids[0] == cdm_tokenizer_bos(tk) && ids[1] == cdm_tokenizer_eos(tk) &&
			      ids[76] == cdm_tokenizer_eos(tk),
		      "empty prompt: BOS EOS padding");
		CHECK(cdm_tokenizer_encode(tk, "x", ids, 76, &err) == CDM_EINPUT, "wrong length");
		/* whitespace and case do not matter */
		int64_t a[77], b[77];
		cdm_tokenizer_encode(tk, "a Photo of a BOOT", a, 77, &err);
		cdm_tokenizer_encode(tk, "  a photo\tof   a boot\n", b, 77, &err);
		CHECK(!memcmp(a, b, sizeof a), "case/whitespace normalisation");
		cdm_tokenizer_free(tk);
	} else {
		CHECK(0, "tok: %s", err.msg);
	}
	CHECK(cdm_tokenizer_load(&tk, root, &err) == CDM_EINPUT && strstr(err.msg, "vocab.json"),
	      "no vocab: %s", err.msg);
done:
	if (nn) {
		cdm_nn_free(nn, x);
		cdm_nn_free(nn, ctx);
		cdm_nn_free(nn, out);
	}
	cdm_unet_cond_free(un);
	cdm_nn_plain_free(nn);
}

/* ---- cases ------------------------------------------------------------------ */

enum kind { K_UNET, K_VAE, K_CLIP, K_TOK, K_COUNT };
static const char *const kind_name[K_COUNT] = {"UNet2DConditionModel", "AutoencoderKL",
					       "CLIPTextModel", "tokenizer"};

static int exists(const char *dir, const char *file)
{
	char p[4400];
	struct stat sb;
	snprintf(p, sizeof p, "%.4096s/%.64s", dir, file);
	return stat(p, &sb) == 0;
}

static int kind_of(const char *dir)
{
	if (exists(dir, "vocab.json"))
		return K_TOK;
	if (exists(dir, "model.safetensors"))
		return K_CLIP;
	char p[4400], *text = NULL;
	size_t len;
	struct cdm_err err;
	snprintf(p, sizeof p, "%s/config.json", dir);
	if (cdm_sd_read_text(p, 1 << 20, &text, &len, &err) < 0)
		return -1;
	int k = strstr(text, "\"UNet2DConditionModel\"") ? K_UNET
		: strstr(text, "\"AutoencoderKL\"")      ? K_VAE
							 : -1;
	cdm_free(text);
	return k;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void golden_cases(const char *root)
{
	DIR *d = opendir(root);
	CHECK(d != NULL, "cannot open %s", root);
	if (!d)
		return;
	char *names[256];
	int n = 0, count[K_COUNT] = {0};
	struct dirent *e;
	while ((e = readdir(d)) && n < 256)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof *names, cmp_str);
	for (int i = 0; i < n; i++) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%.3800s/%.255s", root, names[i]);
		int k = kind_of(dir);
		if (k < 0) {
			free(names[i]);
			continue;
		}
		double rel = k == K_UNET ? run_unet(dir, names[i])
			     : k == K_VAE ? run_vae(dir, names[i])
			     : k == K_CLIP ? run_clip(dir, names[i])
					   : run_tok(dir, names[i]);
		CHECK(rel < TOL, "%s: max relative error %.3g >= %g", names[i], rel, TOL);
		count[k]++;
		free(names[i]);
	}
	for (int k = 0; k < K_COUNT; k++)
		CHECK(count[k] > 0, "no %s golden case under %s", kind_name[k], root);
}

int main(void)
{
	const char *root = getenv("CDM_GOLDEN_SD_DIR");
	if (!root)
		root = "tests/golden_sd";
	test_ops();
	golden_cases(root);
	hostile(root);
	return check_done();
}
