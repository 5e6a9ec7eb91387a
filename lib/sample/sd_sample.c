/*
 * sample/sd_sample: the party side for Stable Diffusion pipeline shares
 * (cdm_sample_run dispatches here when the model share carries
 * "pipeline" = "stable-diffusion"; layout in sd_share.c and sample.h).
 *
 * The run, all on shares:
 *   1. agreement (one round): model and input sharings, sampler, steps,
 *      eta, protocols, fraction bits and the guidance scale;
 *   2. text encoding: the CLIP text encoder on the secret one-hot ids of
 *      [negative prompt; prompt] in one batch of 2 -> ctx [2,L,D], expanded
 *      to [2B,L,D] = [uncond x B; cond x B] (local copies);
 *   3. x_T: the user's latents from the input share, or joint noise;
 *   4. per step: eps = UNet([x; x], t, ctx) split into eps_u, eps_c and
 *      combined as eps_u + s (eps_c - eps_u) (lib/model/sd_pipe.h, the same
 *      code as cdm-unet-step --guidance), then the sampler update; with
 *      s <= 1 the prompt alone, batch B (diffusers does no guidance then);
 *   5. the VAE decoder on x / scaling_factor -> the image share [B,C,H,W].
 * Unlike the UNet2DModel loop every step runs on the caller's session: SD
 * runs do not support checkpoints (refused with a clear error), so the
 * per-step sessions that make resumed runs repeatable are not needed.
 *
 * Public-weights mode (o->public_model: the plaintext pipeline folder, read
 * by all three parties; no model share): the configs come from the folder,
 * the weights from its three safetensors files, and the model id is
 * "public:" and SHA-256 of the configs and weights, compared in step 1 as
 * the sharing id is. Products of a public weight and a shared activation
 * are local (lib/nn/secure.h), the prompt's one-hot rows, x_T, every
 * activation and the image stay shared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../model/clip.h"
#include "../model/config.h"
#include "../model/sd_config.h"
#include "../model/sd_pipe.h"
#include "../model/unet_cond.h"
#include "../model/vae.h"
#include "../nn/secure.h"
#include "../ring/ring.h"
#include "sample_impl.h"

struct sd_run {
	cdm_mpc *m;
	cdm_nn *nn;
	cdm_unet_cond *unet;
	cdm_vae *vae;
	cdm_clip *clip;
	cdm_sampler *sampler;
	cdm_noise *noise;
	cdm_tensor *x, *x0_prev, *ctx; /* latents [B,C,h,w], DPM++ history, [2B,L,D] */
	int64_t shape[4];              /* latents */
	int64_t len;                   /* tokens per prompt */
	uint8_t seed[CDM_SEED_BYTES];
	const struct cdm_sample_opts *o;
	struct cdm_sample_result *res;
	cdm_st *pubw[3];               /* public mode: unet, vae, text encoder */
	const char *mpath;             /* the model share, or the public folder */
};

static void sd_free(struct sd_run *r)
{
	if (r->nn) {
		cdm_nn_free(r->nn, r->x);
		cdm_nn_free(r->nn, r->x0_prev);
		cdm_nn_free(r->nn, r->ctx);
	}
	cdm_unet_cond_free(r->unet);
	cdm_vae_free(r->vae);
	cdm_clip_free(r->clip);
	cdm_sampler_free(r->sampler);
	cdm_noise_free(r->noise);
	cdm_nn_secure_free(r->nn);
	for (int i = 0; i < 3; i++)
		cdm_st_close(r->pubw[i]);
	memset(r->seed, 0, sizeof r->seed);
}

/* ---- public-weights mode --------------------------------------------------------- */

/* "public:" and 128 bits of SHA-256 over the UNet, VAE and text encoder
 * configs and weights and the scheduler config (what the parties compare),
 * and the three weight files opened (mmapped) into r->pubw. */
static int sd_public_open(struct sd_run *r, const char *dir, struct cdm_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	struct cdm_model_paths p;
	if (!cdm_sample_sd_is_pipeline(dir))
		return cdm_fail(err, CDM_EINPUT, "--public-model %s: not a Stable Diffusion pipeline "
				"folder (model_index.json and a UNet2DConditionModel), but the input "
				"share is a prompt", dir);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return cdm_fail(err, CDM_EINTERNAL, "public model: SHA-256 unavailable");
	}
	int rc = 0;
	for (int part = 0; rc == 0 && part < 3; part++) {
		rc = cdm_sd_locate(&p, dir, (enum cdm_sd_part)part, err);
		if (rc == 0)
			rc = cdm_sample_hash_file(ctx, p.config, err);
		if (rc == 0)
			rc = cdm_sample_hash_file(ctx, p.weights, err);
		if (rc == 0)
			rc = cdm_st_open(&r->pubw[part], p.weights, err);
	}
	if (rc == 0)
		rc = cdm_model_locate(&p, dir, err);
	if (rc == 0 && p.sched_config[0])
		rc = cdm_sample_hash_file(ctx, p.sched_config, err);
	if (rc == 0)
		EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	CDM_TRY(rc);
	char *id = r->res->model_id;
	int k = snprintf(id, sizeof r->res->model_id, "public:");
	for (unsigned i = 0; i < 16 && i < len; i++)
		k += snprintf(id + k, sizeof r->res->model_id - (size_t)k, "%02x", md[i]);
	return 0;
}

/* A config text: the model share's metadata `key`, or (public mode) the
 * file of `part` in the folder (part < 0: the scheduler config, whose text
 * may be absent: *text NULL). *owned is what to cdm_free afterwards. */
static int config_text(struct sd_run *r, cdm_share *model, const char *key, int part,
		       const char **text, char **owned, char *what, size_t wsize,
		       struct cdm_err *err)
{
	*text = NULL;
	*owned = NULL;
	if (model) {
		*text = cdm_share_meta(model, key);
		snprintf(what, wsize, "%s: %s", model->path, key);
		if (!*text && part >= 0)
			return cdm_fail(err, CDM_EINPUT, "%s: no %s metadata", model->path, key);
		return 0;
	}
	struct cdm_model_paths p;
	size_t len;
	if (part >= 0)
		CDM_TRY(cdm_sd_locate(&p, r->mpath, (enum cdm_sd_part)part, err));
	else
		CDM_TRY(cdm_model_locate(&p, r->mpath, err));
	const char *path = part >= 0 ? p.config : p.sched_config;
	snprintf(what, wsize, "%s", path);
	if (!path[0])
		return 0;
	CDM_TRY(cdm_model_read_text(path, (size_t)16 << 20, owned, &len, err));
	*text = *owned;
	return 0;
}

/* The UNet, VAE, text encoder and scheduler configs (sc to be cleared by
 * the caller on success). */
static int sd_configs(struct sd_run *r, cdm_share *model, struct cdm_unet_cond_config *uc,
		      struct cdm_vae_config *vc, struct cdm_clip_config *cc,
		      struct cdm_sched_config *sc, struct cdm_err *err)
{
	static const char *const keys[4] = {"config", "vae_config", "text_encoder_config",
					    "scheduler_config"};
	static const int parts[4] = {CDM_SD_UNET, CDM_SD_VAE, CDM_SD_TEXT_ENCODER, -1};
	char what[CDM_PATH_MAX + 32];
	int rc = 0;
	for (int i = 0; rc == 0 && i < 4; i++) {
		const char *t;
		char *owned;
		if ((rc = config_text(r, model, keys[i], parts[i], &t, &owned, what, sizeof what,
				      err)) < 0)
			break;
		if (i == 0)
			rc = cdm_unet_cond_config_parse(uc, t, strlen(t), what, err);
		else if (i == 1)
			rc = cdm_vae_config_parse(vc, t, strlen(t), what, err);
		else if (i == 2)
			rc = cdm_clip_config_parse(cc, t, strlen(t), what, err);
		else if (t)
			rc = cdm_sched_config_parse(sc, r->o->sampler, t, strlen(t), what, err);
		else
			cdm_sched_config_default(sc, r->o->sampler);
		cdm_free(owned);
	}
	if (rc == 0 && sc->thresholding) {
		cdm_sched_config_clear(sc);
		rc = cdm_fail(err, CDM_EINPUT, "%s: scheduler_config has thresholding=true; not "
			      "supported on shares", r->mpath);
	}
	return rc;
}

/* Refusals first, then the run digest every party must share. */
static int sd_agree(struct sd_run *r, cdm_share *model, cdm_share *input, struct cdm_err *err)
{
	const struct cdm_sample_opts *o = r->o;
	int frac = cdm_mpc_frac(r->m);
	if (o->checkpoint_dir || o->resume)
		return cdm_fail(err, CDM_EINPUT, "--checkpoint/--resume are not supported for "
				"Stable Diffusion pipelines");
	if (!input)
		return cdm_fail(err, CDM_EINPUT, "no input share");
	if (o->public_model) {
		r->mpath = o->public_model;
		CDM_TRY(sd_public_open(r, o->public_model, err));
	} else {
		if (!model)
			return cdm_fail(err, CDM_EINPUT, "no model share");
		r->mpath = model->path;
		const char *mv = cdm_share_meta(model, CDM_SD_PIPELINE_KEY);
		if (!mv || strcmp(mv, CDM_SD_PIPELINE_VALUE) != 0)
			return cdm_fail(err, CDM_EINPUT, "%s: a prompt input share, but %s is not the "
					"share of a Stable Diffusion pipeline", input->path,
					model->path);
		CDM_TRY(cdm_sample_check_share(model, cdm_mpc_id(r->m), "model", err));
		if (model->frac_bits != frac)
			return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits; the session uses "
					"%d", model->path, model->frac_bits, frac);
		snprintf(r->res->model_id, sizeof r->res->model_id, "%s", model->sharing_id);
	}
	CDM_TRY(cdm_sample_check_share(input, cdm_mpc_id(r->m), "input", err));
	if (input->frac_bits != frac)
		return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits; the session uses %d",
				input->path, input->frac_bits, frac);
	const char *pv = cdm_share_meta(input, CDM_SD_PIPELINE_KEY);
	if (!pv || strcmp(pv, CDM_SD_PIPELINE_VALUE) != 0)
		return cdm_fail(err, CDM_EINPUT, "%s: not a prompt input share, but %s is a Stable "
				"Diffusion pipeline (cdm-share --input --prompt ...)", input->path,
				r->mpath);
	CDM_TRY(cdm_sample_parse_shape(input, r->shape, err));
	const char *lv = cdm_share_meta(input, "prompt_len");
	long long len = lv ? strtoll(lv, NULL, 10) : 0;
	if (len < 1 || len > 4096)
		return cdm_fail(err, CDM_EINPUT, "%s: missing or bad 'prompt_len' metadata",
				input->path);
	r->len = len;
	char d[CDM_SAMPLE_DIGEST_LEN] = {0};
	snprintf(d, sizeof d,
		 "model_sharing=%s input_sharing=%s sampler=%s steps=%lld eta=%.17g protocols=%s "
		 "frac_bits=%d guidance=%.17g",
		 r->res->model_id, input->sharing_id, cdm_sampler_kind_name(o->sampler),
		 (long long)o->steps, o->eta, cdm_suite_name(o->suite), frac, o->guidance);
	cdm_mpc_set_label(r->m, "setup");
	return cdm_sample_agree(r->m, d, err);
}

/* Configs from the share, the sampler, and the three models bound to it. */
static int sd_setup(struct sd_run *r, cdm_share *model, struct cdm_err *err)
{
	const struct cdm_sample_opts *o = r->o;
	struct cdm_unet_cond_config uc;
	struct cdm_vae_config vc;
	struct cdm_clip_config cc;
	struct cdm_sched_config sc;
	CDM_TRY(sd_configs(r, model, &uc, &vc, &cc, &sc, err));
	int rc = cdm_sampler_new(&r->sampler, &sc, o->sampler, o->steps, o->eta, err);
	cdm_sched_config_clear(&sc);
	CDM_TRY(rc);
	CDM_TRY(cdm_nn_secure_new(&r->nn, r->m, o->suite, err));
	if (r->pubw[0])
		CDM_TRY(cdm_nn_secure_bind_public_files(r->nn, r->pubw, 3, err));
	else
		CDM_TRY(cdm_nn_secure_bind(r->nn, model, err));
	if ((rc = cdm_unet_cond_new(&r->unet, r->nn, &uc, err)) < 0 ||
	    (rc = cdm_vae_new(&r->vae, r->nn, &vc, err)) < 0 ||
	    (rc = cdm_clip_new(&r->clip, r->nn, &cc, err)) < 0) {
		cdm_err_prefix(err, "%s: ", r->mpath);
		return rc;
	}
	int64_t ctxd[3] = {2 * r->shape[0], r->len, cdm_unet_cond_ctx_dim(r->unet)};
	int64_t x2[4] = {2 * r->shape[0], r->shape[1], r->shape[2], r->shape[3]};
	if ((rc = cdm_unet_cond_check_input(r->unet, 4, x2, 3, ctxd, err)) < 0 ||
	    (rc = cdm_vae_check_input(r->vae, 4, r->shape, err)) < 0)
		cdm_err_prefix(err, "%s: ", r->mpath);
	if (rc == 0 && cc.hidden_size != ctxd[2])
		rc = cdm_fail(err, CDM_EINPUT, "%s: the text encoder's width %lld is not the UNet's "
			      "cross_attention_dim %lld", r->mpath, (long long)cc.hidden_size,
			      (long long)ctxd[2]);
	return rc;
}

/* This party's seed (as lib/sample's UNet loop), then x_T: the user's
 * latents, or joint noise (sub-stream 0). */
static int sd_noise(struct sd_run *r, cdm_share *input, struct cdm_err *err)
{
	CDM_TRY(cdm_sample_party_seed(r->o, cdm_mpc_id(r->m), r->seed, err));
	CDM_TRY(cdm_noise_new(&r->noise, r->m, r->seed, err));
	if (cdm_share_find(input, "noise"))
		return cdm_sample_input_tensor(r->nn, input, "noise", 4, r->shape, 0, &r->x, err);
	cdm_mpc_set_label(r->m, "noise");
	return cdm_sample_joint_tensor(r->nn, r->noise, r->shape, 0, &r->x, err);
}

/* ctx [2B,L,D] from the secret ids of [negative prompt; prompt]. */
static int sd_encode(struct sd_run *r, cdm_share *input, struct cdm_err *err)
{
	cdm_tensor *ids = NULL, *ctx2 = NULL;
	int64_t d[2] = {2 * r->len, cdm_clip_config(r->clip)->vocab_size};
	int rc = cdm_sample_input_tensor(r->nn, input, "ids", 2, d, 1, &ids, err);
	if (rc == 0)
		rc = cdm_clip_forward(r->clip, ids, 2, r->len, &ctx2, err);
	if (rc == 0)
		rc = cdm_sd_expand_ctx(r->nn, ctx2, r->shape[0], &r->ctx, err);
	cdm_nn_free(r->nn, ids);
	cdm_nn_free(r->nn, ctx2);
	cdm_clip_free(r->clip); /* its weights are no longer needed */
	r->clip = NULL;
	return rc;
}

static int sd_step(struct sd_run *r, int64_t k, struct cdm_err *err)
{
	struct cdm_step_coefs c;
	cdm_tensor *eps = NULL;
	double t[CDM_SAMPLE_MAX_BATCH];
	CDM_TRY(cdm_sampler_coefs(r->sampler, k, &c, err));
	for (int64_t b = 0; b < r->shape[0]; b++)
		t[b] = (double)c.t;
	int rc = cdm_sd_guided_eps(r->nn, r->unet, r->x, t, r->ctx, r->o->guidance, &eps, err);
	if (rc == 0)
		rc = cdm_sample_advance(r->nn, r->m, r->noise, r->sampler, k, r->shape, eps, &r->x,
					&r->x0_prev, err);
	cdm_nn_free(r->nn, eps);
	return rc;
}

/* image = VAE decoder(x / scaling_factor) into res. */
static int sd_decode(struct sd_run *r, struct cdm_err *err)
{
	cdm_tensor *z = NULL, *img = NULL;
	double sf = cdm_vae_config(r->vae)->scaling_factor;
	int rc = cdm_nn_scale(r->nn, r->x, 1.0 / sf, 0, &z, err);
	if (rc == 0)
		rc = cdm_vae_decode(r->vae, z, &img, err);
	if (rc == 0)
		rc = cdm_shr_copy(&r->res->x, cdm_nn_secure_shr(img), err);
	if (rc == 0)
		memcpy(r->res->shape, img->dim, sizeof r->res->shape);
	cdm_nn_free(r->nn, z);
	cdm_nn_free(r->nn, img);
	return rc;
}

int cdm_sample_sd_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		      const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		      struct cdm_err *err)
{
	struct sd_run r;
	memset(&r, 0, sizeof r);
	r.m = m, r.o = o, r.res = res;
	int rc = sd_agree(&r, model, input, err);
	if (rc == 0)
		rc = sd_setup(&r, model, err);
	if (rc == 0)
		rc = sd_noise(&r, input, err);
	if (rc == 0)
		rc = sd_encode(&r, input, err);
	int64_t steps = rc == 0 ? cdm_sampler_steps(r.sampler) : 0;
	for (int64_t k = 0; rc == 0 && k < steps; k++) {
		rc = sd_step(&r, k, err);
		if (rc == 0 && o->progress)
			o->progress(o->progress_arg, k + 1, steps);
	}
	if (rc == 0)
		rc = sd_decode(&r, err);
	if (rc == 0) { /* the output's sharing id: common to the three parties */
		uint8_t idb[CDM_SHARE_ID_LEN / 2];
		cdm_prg_bytes(cdm_mpc_common_prg(m), idb, sizeof idb);
		for (size_t i = 0; i < sizeof idb; i++)
			snprintf(res->sharing_id + 2 * i, 3, "%02x", idb[i]);
	}
	cdm_mpc_set_label(m, "other");
	cdm_sample_add_costs(res, m, NULL);
	sd_free(&r);
	return rc;
}
