/*
 * sample/sd_share: the producing side for Stable Diffusion pipelines.
 *
 * A model share of a pipeline folder holds, in one file per party:
 *   the UNet2DConditionModel weights (names as in unet/), the AutoencoderKL
 *   decoder weights (vae/ without encoder.* and quant_conv.*: decoding needs
 *   neither), and the CLIPTextModel weights (text_encoder/ text_model.*
 *   float tensors; position_ids and a text projection are left out);
 *   metadata "config" (the UNet config.json), "vae_config",
 *   "text_encoder_config", "scheduler_config" (if any), the tokenizer files
 *   "tokenizer_vocab", "tokenizer_merges" and, when present,
 *   "tokenizer_config" and "special_tokens_map" (all public), and
 *   "pipeline" = "stable-diffusion".
 * The three weight name spaces do not overlap in diffusers; a collision is
 * refused anyway, since a party binds weights by name from one file.
 *
 * An input share of a prompt is described in sample.h
 * (cdm_sample_share_input). The user tokenizes locally, from the pipeline
 * folder or from the tokenizer files a model share carries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fmt/st.h"
#include "../model/config.h"
#include "../model/sd_config.h"
#include "../model/tokenizer.h"
#include "../ring/ring.h"
#include "sample_impl.h"

#define TEXT_LIMIT ((size_t)16 << 20) /* tokenizer files are about 1.6 MB for SD */
#define NPARTS 3                      /* unet, vae, text encoder */

/* ---- detection ---------------------------------------------------------------- */

int cdm_sample_sd_is_pipeline(const char *dir)
{
	char path[CDM_PATH_MAX], cls[128];
	struct cdm_err ignored;
	if (!cdm_model_is_dir(dir))
		return 0;
	if (snprintf(path, sizeof path, "%s/model_index.json", dir) >= (int)sizeof path ||
	    !cdm_model_is_file(path))
		return 0;
	if (cdm_sd_unet_class(dir, cls, sizeof cls, &ignored) < 0)
		return 0;
	return !strcmp(cls, "UNet2DConditionModel");
}

int cdm_sample_sd_is_share(const char *path)
{
	cdm_share *sh = NULL;
	struct cdm_err ignored;
	if (!cdm_model_is_file(path) || cdm_share_open(&sh, path, NULL, &ignored) < 0)
		return 0;
	const char *v = cdm_share_meta(sh, CDM_SD_PIPELINE_KEY);
	int yes = v && !strcmp(v, CDM_SD_PIPELINE_VALUE);
	cdm_share_close(sh);
	return yes;
}

/* ---- model shares ---------------------------------------------------------------- */

static const char *const meta_keys[] = {
	"config", "vae_config", "text_encoder_config", "scheduler_config",
	"tokenizer_vocab", "tokenizer_merges", "tokenizer_config", "special_tokens_map",
};
enum { M_UNET, M_VAE, M_TE, M_SCHED, M_VOCAB, M_MERGES, M_TOKCFG, M_SPECIAL, M_COUNT };

struct sd_model {
	cdm_st *st[NPARTS];
	char weights[NPARTS][CDM_PATH_MAX];
	char *meta[M_COUNT];   /* texts, NULL when absent (optional ones) */
	uint8_t key[CDM_SEED_BYTES];
	int frac, zstd;
	size_t maxn;           /* largest kept tensor */
};

/* Does party `part` keep tensor t? Only what the secure pipeline uses. */
static int keep(int part, const struct cdm_st_tensor *t)
{
	const char *n = t->name;
	if (part == CDM_SD_VAE)
		return strncmp(n, "encoder.", 8) != 0 && strncmp(n, "quant_conv.", 11) != 0;
	if (part == CDM_SD_TEXT_ENCODER) {
		size_t l = strlen(n);
		return !strncmp(n, "text_model.", 11) && (l < 12 || strcmp(n + l - 12, "position_ids")) &&
		       (t->dtype == CDM_F32 || t->dtype == CDM_F16 || t->dtype == CDM_BF16 ||
			t->dtype == CDM_F64);
	}
	return 1;
}

static int read_opt(const char *dir, const char *file, char **out, struct cdm_err *err)
{
	char path[CDM_PATH_MAX];
	size_t len;
	*out = NULL;
	if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
		return cdm_fail(err, CDM_EINPUT, "%s: path too long", dir);
	if (!cdm_model_is_file(path))
		return 0;
	return cdm_model_read_text(path, TEXT_LIMIT, out, &len, err);
}

/* Configs (parsed once here, so a bad one fails before anything is
 * written), tokenizer files and the three weight files. */
static int sd_model_open(struct sd_model *s, const char *dir, struct cdm_err *err)
{
	struct cdm_model_paths p;
	size_t len;
	for (int part = 0; part < NPARTS; part++) {
		CDM_TRY(cdm_sd_locate(&p, dir, (enum cdm_sd_part)part, err));
		CDM_TRY(cdm_model_read_text(p.config, TEXT_LIMIT, &s->meta[part], &len, err));
		snprintf(s->weights[part], CDM_PATH_MAX, "%s", p.weights);
		CDM_TRY(cdm_st_open(&s->st[part], p.weights, err));
	}
	struct cdm_unet_cond_config uc;
	struct cdm_vae_config vc;
	struct cdm_clip_config cc;
	CDM_TRY(cdm_unet_cond_config_parse(&uc, s->meta[M_UNET], strlen(s->meta[M_UNET]),
					   "unet/config.json", err));
	CDM_TRY(cdm_vae_config_parse(&vc, s->meta[M_VAE], strlen(s->meta[M_VAE]),
				     "vae/config.json", err));
	CDM_TRY(cdm_clip_config_parse(&cc, s->meta[M_TE], strlen(s->meta[M_TE]),
				      "text_encoder/config.json", err));
	CDM_TRY(cdm_model_locate(&p, dir, err));
	if (p.sched_config[0])
		CDM_TRY(cdm_model_read_text(p.sched_config, TEXT_LIMIT, &s->meta[M_SCHED], &len, err));
	CDM_TRY(cdm_sd_locate(&p, dir, CDM_SD_TOKENIZER, err));
	cdm_tokenizer *tok = NULL; /* loads only to check the files */
	CDM_TRY(cdm_tokenizer_load(&tok, dir, err));
	cdm_tokenizer_free(tok);
	static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
					    "special_tokens_map.json"};
	for (int i = 0; i < 4; i++)
		CDM_TRY(read_opt(p.config, files[i], &s->meta[M_VOCAB + i], err));
	return 0;
}

/* Every kept tensor once, and no name twice across the three files. */
static int sd_model_check_names(struct sd_model *s, struct cdm_err *err)
{
	for (int pa = 0; pa < NPARTS; pa++)
		for (size_t i = 0; i < cdm_st_count(s->st[pa]); i++) {
			const struct cdm_st_tensor *t = cdm_st_at(s->st[pa], i);
			if (!keep(pa, t))
				continue;
			if (t->numel > s->maxn)
				s->maxn = t->numel;
			for (int pb = 0; pb < pa; pb++) {
				const struct cdm_st_tensor *u = cdm_st_find(s->st[pb], t->name);
				if (u && keep(pb, u))
					return cdm_fail(err, CDM_EINPUT, "%s and %s both hold tensor "
							"'%.100s'", s->weights[pb], s->weights[pa],
							t->name);
			}
		}
	return 0;
}

static int fill_model(void *arg, int p, const char *id, const char *path, struct cdm_err *err)
{
	struct sd_model *s = arg;
	cdm_share_writer *w = NULL;
	size_t n = s->maxn ? s->maxn : 1;
	uint64_t *buf = cdm_alloc(n, 24, err);
	float *tmp = buf ? cdm_alloc(n, 4, err) : NULL;
	int rc = tmp ? cdm_share_writer_new(&w, p, s->frac, id, "model", err) : CDM_ENOMEM;
	if (rc == 0)
		rc = cdm_sample_writer_seeds(w, s->key, p, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, CDM_SD_PIPELINE_KEY, CDM_SD_PIPELINE_VALUE, err);
	for (int k = 0; rc == 0 && k < M_COUNT; k++)
		if (s->meta[k])
			rc = cdm_share_writer_meta(w, meta_keys[k], s->meta[k], err);
	for (int part = 0; part < NPARTS; part++) {
		for (size_t i = 0; rc == 0 && i < cdm_st_count(s->st[part]); i++) {
			const struct cdm_st_tensor *t = cdm_st_at(s->st[part], i);
			if (!keep(part, t))
				continue;
			uint64_t *x = buf, *a = buf + t->numel, *b = buf + 2 * t->numel;
			if ((rc = cdm_sample_encode(s->st[part], t, s->frac, x, tmp, s->weights[part],
						    err)) < 0 ||
			    (rc = cdm_sample_split_seeded(s->key, t->name, x, t->numel, p, a, b,
							  err)) < 0)
				break;
			rc = cdm_share_writer_add(w, t->name, t->ndim, t->shape, a, b, err);
		}
	}
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, s->zstd, err);
	cdm_share_writer_free(w);
	cdm_free(buf);
	cdm_free(tmp);
	return rc;
}

int cdm_sample_sd_share_model(const char *dir, const char *prefix,
			      const struct cdm_share_opts *o, struct cdm_err *err)
{
	struct sd_model s;
	memset(&s, 0, sizeof s);
	s.frac = cdm_sample_frac(o, err);
	if (s.frac < 0)
		return s.frac;
	s.zstd = o ? o->zstd_level : 0;
	int rc = sd_model_open(&s, dir, err);
	if (rc == 0)
		rc = sd_model_check_names(&s, err);
	if (rc == 0)
		rc = cdm_sample_run_key(o, s.key, err);
	if (rc == 0)
		rc = cdm_sample_write_trio(prefix, fill_model, &s, err);
	memset(s.key, 0, sizeof s.key);
	for (int i = 0; i < NPARTS; i++)
		cdm_st_close(s.st[i]);
	for (int k = 0; k < M_COUNT; k++)
		cdm_free(s.meta[k]);
	return rc;
}

/* ---- input shares ------------------------------------------------------------------ */

struct sd_input {
	int64_t shape[4];     /* latents [B,C,h,w] */
	int64_t len, vocab;   /* tokens per prompt, one-hot width */
	uint64_t *onehot;     /* [2*len*vocab] integers */
	uint64_t *noise;      /* fixed point x_T, or NULL */
	float *x;             /* plaintext x_T, or NULL */
	uint8_t key[CDM_SEED_BYTES];
	int frac, zstd;
};

/* A temporary tokenizer folder from a model share's metadata. */
static int tokenizer_from_share(const cdm_share *sh, cdm_tokenizer **tok, struct cdm_err *err)
{
	static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
					    "special_tokens_map.json"};
	char dir[] = "/tmp/cdm-tokenizer.XXXXXX", path[CDM_PATH_MAX];
	if (!cdm_share_meta(sh, "tokenizer_vocab") || !cdm_share_meta(sh, "tokenizer_merges"))
		return cdm_fail(err, CDM_EINPUT, "%s: no tokenizer_vocab/tokenizer_merges metadata",
				sh->path);
	if (!mkdtemp(dir))
		return cdm_fail(err, CDM_EIO, "%s: %s", dir, strerror(errno));
	int rc = 0;
	for (int i = 0; i < 4; i++) {
		const char *text = cdm_share_meta(sh, meta_keys[M_VOCAB + i]);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (text && rc == 0)
			rc = cdm_write_file_atomic(path, text, strlen(text), 0600, err);
	}
	if (rc == 0 && (rc = cdm_tokenizer_load(tok, dir, err)) < 0)
		cdm_err_prefix(err, "%s: tokenizer: ", sh->path);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return rc;
}

/* The public parts the user needs: UNet and text encoder configs and the
 * tokenizer, from a pipeline folder or a pipeline model share. */
static int sd_public(const char *model, struct cdm_unet_cond_config *uc,
		     struct cdm_clip_config *cc, cdm_tokenizer **tok, struct cdm_err *err)
{
	if (cdm_model_is_dir(model)) {
		struct cdm_model_paths p;
		if (!cdm_sample_sd_is_pipeline(model))
			return cdm_fail(err, CDM_EINPUT, "%s: --prompt needs a Stable Diffusion "
					"pipeline (model_index.json and a UNet2DConditionModel)",
					model);
		CDM_TRY(cdm_sd_locate(&p, model, CDM_SD_UNET, err));
		CDM_TRY(cdm_unet_cond_config_load(uc, p.config, err));
		CDM_TRY(cdm_sd_locate(&p, model, CDM_SD_TEXT_ENCODER, err));
		CDM_TRY(cdm_clip_config_load(cc, p.config, err));
		return cdm_tokenizer_load(tok, model, err);
	}
	cdm_share *sh = NULL;
	CDM_TRY(cdm_share_open(&sh, model, "model", err));
	const char *pv = cdm_share_meta(sh, CDM_SD_PIPELINE_KEY);
	const char *u = cdm_share_meta(sh, "config"), *t = cdm_share_meta(sh, "text_encoder_config");
	char what[CDM_PATH_MAX + 32];
	int rc = 0;
	if (!pv || strcmp(pv, CDM_SD_PIPELINE_VALUE) || !u || !t)
		rc = cdm_fail(err, CDM_EINPUT, "%s: --prompt needs the share of a Stable Diffusion "
			      "pipeline", model);
	snprintf(what, sizeof what, "%s: config", model);
	if (rc == 0)
		rc = cdm_unet_cond_config_parse(uc, u, strlen(u), what, err);
	snprintf(what, sizeof what, "%s: text_encoder_config", model);
	if (rc == 0)
		rc = cdm_clip_config_parse(cc, t, strlen(t), what, err);
	if (rc == 0)
		rc = tokenizer_from_share(sh, tok, err);
	cdm_share_close(sh);
	return rc;
}

/* ids of the negative prompt and the prompt as integer one-hot rows. */
static int sd_onehot(struct sd_input *si, const cdm_tokenizer *tok,
		     const struct cdm_clip_config *cc, const struct cdm_input_spec *in,
		     struct cdm_err *err)
{
	si->len = cdm_tokenizer_length(tok);
	si->vocab = cc->vocab_size;
	if (si->len > cc->max_positions)
		return cdm_fail(err, CDM_EINPUT, "tokenizer length %lld exceeds the text encoder's "
				"%lld positions", (long long)si->len, (long long)cc->max_positions);
	int64_t *ids = cdm_alloc((size_t)(2 * si->len), sizeof *ids, err);
	if (!ids)
		return CDM_ENOMEM;
	const char *text[2] = {in->negative_prompt ? in->negative_prompt : "", in->prompt};
	int rc = 0;
	for (int k = 0; rc == 0 && k < 2; k++)
		rc = cdm_tokenizer_encode(tok, text[k], ids + k * si->len, si->len, err);
	for (int64_t i = 0; rc == 0 && i < 2 * si->len; i++)
		if (ids[i] < 0 || ids[i] >= si->vocab)
			rc = cdm_fail(err, CDM_EINPUT, "%s: token id %lld outside the text encoder's "
				      "vocabulary of %lld", i < si->len ? "--negative-prompt" : "--prompt",
				      (long long)ids[i], (long long)si->vocab);
	size_t n = (size_t)(2 * si->len * si->vocab);
	if (rc == 0 && !(si->onehot = cdm_zalloc(n, 8, err)))
		rc = CDM_ENOMEM;
	for (int64_t i = 0; rc == 0 && i < 2 * si->len; i++)
		si->onehot[i * si->vocab + ids[i]] = 1;
	cdm_free(ids);
	return rc;
}

/* x_T [B,C,h,w] from --noise (tensor `x` or the only one) or --seed. */
static int sd_noise(struct sd_input *si, const struct cdm_unet_cond_config *uc,
		    const struct cdm_input_spec *in, struct cdm_err *err)
{
	cdm_st *st = NULL;
	const struct cdm_st_tensor *t = NULL;
	int64_t *sh = si->shape;
	if (in->noise_path) {
		CDM_TRY(cdm_st_open(&st, in->noise_path, err));
		t = cdm_st_find(st, "x");
		if (!t && cdm_st_count(st) == 1)
			t = cdm_st_at(st, 0);
		int ok = t && t->ndim == 4 && t->shape[1] == uc->in_channels &&
			 t->shape[0] <= CDM_SAMPLE_MAX_BATCH && (!in->batch || t->shape[0] == in->batch) &&
			 (!uc->sample_h || (t->shape[2] == uc->sample_h && t->shape[3] == uc->sample_w));
		if (!ok) {
			cdm_st_close(st);
			return cdm_fail(err, CDM_EINPUT, "%s: needs tensor 'x' [B,%lld,%lld,%lld] "
					"(B = --batch if given)", in->noise_path,
					(long long)uc->in_channels, (long long)uc->sample_h,
					(long long)uc->sample_w);
		}
		memcpy(sh, t->shape, 4 * sizeof *sh);
	} else {
		if (!uc->sample_h)
			return cdm_fail(err, CDM_EINPUT, "the UNet's sample_size is null: give --noise "
					"to set the latent shape");
		sh[0] = in->batch ? in->batch : 1, sh[1] = uc->in_channels;
		sh[2] = uc->sample_h, sh[3] = uc->sample_w;
	}
	size_t n = (size_t)(sh[0] * sh[1] * sh[2] * sh[3]);
	int rc = 0;
	if (in->noise_path || in->has_seed) {
		if (!(si->x = cdm_alloc(n, 4, err)))
			rc = CDM_ENOMEM;
		else if (t)
			rc = cdm_st_to_f32(st, t, si->x, err);
		else
			rc = cdm_sample_seed_noise(in->seed, si->x, n, err);
		if (rc == 0 && !(si->noise = cdm_alloc(n, 8, err)))
			rc = CDM_ENOMEM;
		if (rc == 0)
			rc = cdm_fxp_encode_f32(si->noise, si->x, n, si->frac, "noise", NULL, err);
	}
	if (st)
		cdm_st_close(st);
	return rc;
}

static int fill_input(void *arg, int p, const char *id, const char *path, struct cdm_err *err)
{
	struct sd_input *si = arg;
	cdm_share_writer *w = NULL;
	char shape[128], len[32];
	snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lld", (long long)si->shape[0],
		 (long long)si->shape[1], (long long)si->shape[2], (long long)si->shape[3]);
	snprintf(len, sizeof len, "%lld", (long long)si->len);
	size_t nx = (size_t)(si->shape[0] * si->shape[1] * si->shape[2] * si->shape[3]);
	size_t ni = (size_t)(2 * si->len * si->vocab), nmax = nx > ni ? nx : ni;
	uint64_t *buf = cdm_alloc(nmax, 16, err);
	if (!buf)
		return CDM_ENOMEM;
	int rc = cdm_share_writer_new(&w, p, si->frac, id, "input", err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "shape", shape, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, CDM_SD_PIPELINE_KEY, CDM_SD_PIPELINE_VALUE, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "prompt_len", len, err);
	int64_t d[2] = {2 * si->len, si->vocab};
	if (rc == 0 && (rc = cdm_sample_split(si->key, 0, si->onehot, ni, p, buf, buf + ni, err)) == 0)
		rc = cdm_share_writer_add(w, "ids", 2, d, buf, buf + ni, err);
	if (rc == 0 && si->noise &&
	    (rc = cdm_sample_split(si->key, 1, si->noise, nx, p, buf, buf + nx, err)) == 0)
		rc = cdm_share_writer_add(w, "noise", 4, si->shape, buf, buf + nx, err);
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, si->zstd, err);
	cdm_share_writer_free(w);
	cdm_free(buf);
	return rc;
}

static int check_spec(const char *model, const struct cdm_input_spec *in, struct cdm_err *err)
{
	if (!in->prompt)
		return cdm_fail(err, CDM_EINPUT, "%s is a Stable Diffusion pipeline: give --prompt",
				model);
	if (in->nlabels)
		return cdm_fail(err, CDM_EINPUT, "--label: a Stable Diffusion pipeline takes "
				"--prompt, not class labels");
	if (in->has_seed && in->noise_path)
		return cdm_fail(err, CDM_EINPUT, "--seed and --noise exclude each other");
	if (in->dump_noise && !in->has_seed)
		return cdm_fail(err, CDM_EINPUT, "--dump-noise needs --seed");
	return 0;
}

int cdm_sample_sd_share_input(const char *model, const char *prefix,
			      const struct cdm_input_spec *in, const struct cdm_share_opts *o,
			      struct cdm_err *err)
{
	struct sd_input si;
	struct cdm_unet_cond_config uc;
	struct cdm_clip_config cc;
	cdm_tokenizer *tok = NULL;
	memset(&si, 0, sizeof si);
	CDM_TRY(check_spec(model, in, err));
	si.frac = cdm_sample_frac(o, err);
	if (si.frac < 0)
		return si.frac;
	si.zstd = o ? o->zstd_level : 0;
	int rc = sd_public(model, &uc, &cc, &tok, err);
	if (rc == 0)
		rc = sd_onehot(&si, tok, &cc, in, err);
	if (rc == 0)
		rc = sd_noise(&si, &uc, in, err);
	if (rc == 0)
		rc = cdm_sample_run_key(o, si.key, err);
	if (rc == 0)
		rc = cdm_sample_write_trio(prefix, fill_input, &si, err);
	if (rc == 0 && in->dump_noise) { /* the plaintext x_T only once the shares exist */
		cdm_st_writer *w = NULL;
		if ((rc = cdm_st_writer_new(&w, err)) == 0 &&
		    (rc = cdm_st_writer_add(w, "x", CDM_F32, 4, si.shape, si.x, err)) == 0)
			rc = cdm_st_writer_save(w, in->dump_noise, 0600, 0, err);
		cdm_st_writer_free(w);
	}
	memset(si.key, 0, sizeof si.key);
	cdm_tokenizer_free(tok);
	cdm_free(si.onehot);
	cdm_free(si.noise);
	cdm_free(si.x);
	return rc;
}
