/*
 * sample/share: the producing side -- a model folder or a user's input into
 * three share files (see sample.h). The three files are written to
 * temporaries first and renamed together, so a failed run leaves nothing
 * new behind and never replaces an existing file.
 */
#define _GNU_SOURCE
#include "sample.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fmt/st.h"
#include "../model/config.h"
#include "../model/unet.h"
#include "../nn/nn.h"
#include "../prg/prg.h"
#include "../ring/ring.h"
#include "sample_impl.h"

#define CONFIG_LIMIT ((uint64_t)16 << 20)

/* The masks of tensor t: x0 and x1 of the sharing, uniform, from
 * independent streams of the run's key (so each file can be produced on
 * its own, one tensor at a time). */
static int masks(const uint8_t key[CDM_SEED_BYTES], size_t t, uint64_t *x0, uint64_t *x1,
		 size_t n, struct cdm_err *err)
{
	uint8_t s[CDM_SEED_BYTES];
	cdm_prg g = {0};
	for (int j = 0; j < 2; j++) {
		cdm_prg_derive(key, j ? "share-x1" : "share-x0", t, s);
		CDM_TRY(cdm_prg_init(&g, s, err));
		cdm_prg_u64(&g, j ? x1 : x0, n);
		cdm_prg_free(&g);
	}
	return 0;
}

/* Party p's components (x_p, x_{p+1}) of the encoded tensor x. */
static int split(const uint8_t key[CDM_SEED_BYTES], size_t t, const uint64_t *x, size_t n,
		 int p, uint64_t *a, uint64_t *b, struct cdm_err *err)
{
	uint64_t *m = cdm_alloc(n, 16, err);
	if (!m)
		return CDM_ENOMEM;
	uint64_t *x0 = m, *x1 = m + n;
	int rc = masks(key, t, x0, x1, n, err);
	for (size_t k = 0; rc == 0 && k < n; k++) {
		uint64_t c[3] = {x0[k], x1[k], x[k] - x0[k] - x1[k]};
		a[k] = c[p];
		b[k] = c[(p + 1) % 3];
	}
	cdm_free(m);
	return rc;
}

static int run_key(const struct cdm_share_opts *o, uint8_t key[CDM_SEED_BYTES],
		   struct cdm_err *err)
{
	if (o && o->seed) {
		memcpy(key, o->seed, CDM_SEED_BYTES);
		return 0;
	}
	return cdm_seed_random(key, err);
}

static int frac_of(const struct cdm_share_opts *o, struct cdm_err *err)
{
	int f = o && o->frac_bits ? o->frac_bits : CDM_FRAC_BITS_DEFAULT;
	if (f < CDM_FRAC_BITS_MIN || f > CDM_FRAC_BITS_MAX)
		return cdm_fail(err, CDM_EINPUT, "fraction bits %d outside %d..%d", f,
				CDM_FRAC_BITS_MIN, CDM_FRAC_BITS_MAX);
	return f;
}

/* ---- three files at once ---------------------------------------------------- */

struct trio {
	char final[3][CDM_PATH_MAX];
	char tmp[3][CDM_PATH_MAX];
	int saved[3];
};

static int trio_init(struct trio *t, const char *prefix, const char *id, struct cdm_err *err)
{
	memset(t, 0, sizeof *t);
	for (int i = 0; i < 3; i++) {
		int n1 = snprintf(t->final[i], CDM_PATH_MAX, "%s.%d", prefix, i);
		int n2 = snprintf(t->tmp[i], CDM_PATH_MAX, "%s.%d.tmp-%.8s", prefix, i, id);
		if (n1 < 0 || n2 < 0 || n2 >= CDM_PATH_MAX)
			return cdm_fail(err, CDM_EINPUT, "%s: output prefix too long", prefix);
	}
	return 0;
}

static void trio_abort(struct trio *t)
{
	for (int i = 0; i < 3; i++)
		if (t->saved[i])
			unlink(t->tmp[i]);
}

static int trio_commit(struct trio *t, struct cdm_err *err)
{
	for (int i = 0; i < 3; i++)
		if (rename(t->tmp[i], t->final[i]) != 0) {
			int e = errno;
			for (int j = i; j < 3; j++)
				unlink(t->tmp[j]);
			return cdm_fail(err, CDM_EIO, "%s: %s", t->final[i], strerror(e));
		}
	return 0;
}

/* ---- model shares ---------------------------------------------------------------- */

static int encode_tensor(const cdm_st *st, const struct cdm_st_tensor *t, int frac,
			 uint64_t *out, float *tmp, const char *file, struct cdm_err *err)
{
	switch (t->dtype) {
	case CDM_F32: case CDM_F16: case CDM_BF16: case CDM_F64:
		break;
	default:
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.100s' has dtype %s, expected a "
				"float tensor", file, t->name, cdm_dtype_name(t->dtype));
	}
	CDM_TRY(cdm_st_to_f32(st, t, tmp, err));
	char what[200];
	snprintf(what, sizeof what, "%.80s: tensor '%.100s'", file, t->name);
	size_t sat = 0;
	CDM_TRY(cdm_fxp_encode_f32(out, tmp, t->numel, frac, what, &sat, err));
	if (sat)
		return cdm_fail(err, CDM_EINPUT, "%s: %zu values beyond the fixed-point range "
				"+-%g", what, sat, cdm_fxp_max(frac));
	return 0;
}

static int write_model_file(const cdm_st *st, int p, int frac, const char *id,
			    const uint8_t key[CDM_SEED_BYTES], const char *config,
			    const char *sched, const char *file, const char *path, int zstd,
			    struct cdm_err *err)
{
	cdm_share_writer *w = NULL;
	uint64_t *buf = NULL;
	float *tmp = NULL;
	size_t maxn = 1;
	for (size_t i = 0; i < cdm_st_count(st); i++)
		if (cdm_st_at(st, i)->numel > maxn)
			maxn = cdm_st_at(st, i)->numel;
	int rc = cdm_share_writer_new(&w, p, frac, id, "model", err);
	if (rc == 0)
		rc = cdm_sample_writer_seeds(w, key, p, err);
	if (rc == 0 && (!(buf = cdm_alloc(maxn, 24, err)) || !(tmp = cdm_alloc(maxn, 4, err))))
		rc = CDM_ENOMEM;
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "config", config, err);
	if (rc == 0 && sched && *sched)
		rc = cdm_share_writer_meta(w, "scheduler_config", sched, err);
	for (size_t i = 0; rc == 0 && i < cdm_st_count(st); i++) {
		const struct cdm_st_tensor *t = cdm_st_at(st, i);
		uint64_t *x = buf, *a = buf + t->numel, *b = buf + 2 * t->numel;
		if ((rc = encode_tensor(st, t, frac, x, tmp, file, err)) < 0 ||
		    (rc = cdm_sample_split_seeded(key, t->name, x, t->numel, p, a, b, err)) < 0)
			break;
		rc = cdm_share_writer_add(w, t->name, t->ndim, t->shape, a, b, err);
	}
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, zstd, err);
	cdm_share_writer_free(w);
	cdm_free(buf);
	cdm_free(tmp);
	return rc;
}

/* ---- do the weights fit the config? ---------------------------------------------
 * The parties bind every weight by name and shape when they build the
 * UNet, but only after a model owner has shipped the shares. cdm-share
 * builds the same UNet over a shape-only backend (no data is read) so a
 * folder whose weights do not fit its config.json is refused here, naming
 * the tensor and both shapes, and a tensor the model never binds (a
 * misnamed or foreign weight) is refused too instead of travelling along. */

struct fit {
	const cdm_st *st;
	unsigned char *used; /* [cdm_st_count] */
};

static int fit_alloc(void *ctx, int ndim, const int64_t *dim, cdm_tensor **out,
		     struct cdm_err *err)
{
	(void)ctx;
	cdm_tensor *t = cdm_zalloc(1, sizeof *t, err);
	if (!t)
		return CDM_ENOMEM;
	t->ndim = ndim;
	for (int i = 0; i < CDM_NN_MAX_DIMS; i++)
		t->dim[i] = i < ndim ? dim[i] : 1;
	*out = t;
	return 0;
}

static void fit_free(void *ctx, cdm_tensor *t)
{
	(void)ctx;
	cdm_free(t);
}

static int fit_public(void *ctx, cdm_tensor *out, const float *data, struct cdm_err *err)
{
	(void)ctx, (void)out, (void)data, (void)err;
	return 0;
}

static int fit_has(void *vctx, const char *name)
{
	const struct fit *f = vctx;
	return cdm_st_find(f->st, name) != NULL;
}

static int fit_weight(void *vctx, const char *name, int ndim, const int64_t *dim,
		      cdm_tensor **out, struct cdm_err *err)
{
	struct fit *f = vctx;
	const struct cdm_st_tensor *t;
	CDM_TRY(cdm_st_find_shaped(f->st, name, ndim, dim, &t, err));
	for (size_t i = 0; i < cdm_st_count(f->st); i++)
		if (cdm_st_at(f->st, i) == t)
			f->used[i] = 1;
	return fit_alloc(vctx, ndim, dim, out, err);
}

static const struct cdm_nn_ops fit_ops = {
	.name = "shape-check",
	.alloc = fit_alloc,
	.free = fit_free,
	.set_public = fit_public,
	.has_weight = fit_has,
	.weight = fit_weight,
};

/* Every tensor the UNet of cfg binds exists in st with its exact shape, and
 * st holds no other tensor. Messages name the weight file (st's path). */
static int check_fit(const cdm_st *st, const struct cdm_unet_config *cfg, const char *config,
		     struct cdm_err *err)
{
	struct fit f = {st, NULL};
	cdm_nn nn = {&fit_ops, &f};
	cdm_unet *u = NULL;
	size_t n = cdm_st_count(st);
	if (!(f.used = cdm_zalloc(n ? n : 1, 1, err)))
		return CDM_ENOMEM;
	int rc = cdm_unet_new(&u, &nn, cfg, err);
	/* a weight problem names the weight file already; anything else the
	 * UNet refuses (e.g. a group count) comes from the config */
	if (rc < 0 && !strstr(err->msg, cdm_st_path(st)))
		cdm_err_prefix(err, "%s: ", config);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!f.used[i])
			rc = cdm_fail(err, CDM_EINPUT, "%s: tensor '%.100s' is not a weight of the "
				      "model %s describes", cdm_st_path(st), cdm_st_at(st, i)->name,
				      config);
	cdm_unet_free(u);
	cdm_free(f.used);
	return rc;
}

static int read_text(const char *path, char **out, struct cdm_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	*out = NULL;
	if (!path || !*path)
		return 0;
	CDM_TRY(cdm_read_file(path, CONFIG_LIMIT, &buf, &len, err));
	char *s = cdm_alloc(len + 1, 1, err);
	if (!s) {
		cdm_free(buf);
		return CDM_ENOMEM;
	}
	memcpy(s, buf, len);
	s[len] = 0;
	cdm_free(buf);
	if (strlen(s) != len) {
		cdm_free(s);
		return cdm_fail(err, CDM_EINPUT, "%s: contains a NUL byte", path);
	}
	*out = s;
	return 0;
}

int cdm_sample_share_model(const char *model_dir, const char *prefix,
			   const struct cdm_share_opts *o, struct cdm_err *err)
{
	struct cdm_model_paths p;
	struct cdm_unet_config cfg;
	uint8_t key[CDM_SEED_BYTES];
	char id[CDM_SHARE_ID_LEN + 1], *config = NULL, *sched = NULL;
	cdm_st *st = NULL;
	struct trio t;
	if (cdm_sample_sd_is_pipeline(model_dir)) /* Stable Diffusion: sd_share.c */
		return cdm_sample_sd_share_model(model_dir, prefix, o, err);
	int frac = frac_of(o, err);
	if (frac < 0)
		return frac;
	CDM_TRY(cdm_model_locate(&p, model_dir, err));
	int rc = read_text(p.config, &config, err);
	if (rc == 0)
		rc = cdm_unet_config_parse(&cfg, config, strlen(config), p.config, err);
	if (rc == 0)
		rc = read_text(p.sched_config, &sched, err);
	if (rc == 0)
		rc = cdm_st_open(&st, p.weights, err);
	if (rc == 0)
		rc = check_fit(st, &cfg, p.config, err);
	if (rc == 0)
		rc = run_key(o, key, err);
	if (rc == 0)
		rc = cdm_share_new_id(id, err);
	if (rc == 0)
		rc = trio_init(&t, prefix, id, err);
	int started = rc == 0;
	for (int i = 0; rc == 0 && i < 3; i++) {
		rc = write_model_file(st, i, frac, id, key, config, sched, p.weights, t.tmp[i],
				      o ? o->zstd_level : 0, err);
		t.saved[i] = rc == 0;
	}
	if (rc == 0)
		rc = trio_commit(&t, err);
	else if (started)
		trio_abort(&t);
	memset(key, 0, sizeof key);
	cdm_st_close(st);
	cdm_free(config);
	cdm_free(sched);
	return rc;
}

/* ---- input shares ------------------------------------------------------------------ */

int cdm_sample_seed_noise(uint64_t seed, float *out, size_t n, struct cdm_err *err)
{
	uint8_t k[CDM_SEED_BYTES] = {0}, s[CDM_SEED_BYTES];
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)(seed >> (8 * i));
	cdm_prg_derive(k, "x_T", 0, s);
	cdm_prg g = {0};
	CDM_TRY(cdm_prg_init(&g, s, err));
	double *d = cdm_alloc(n, sizeof *d, err);
	if (!d) {
		cdm_prg_free(&g);
		return CDM_ENOMEM;
	}
	cdm_prg_gauss(&g, d, n);
	for (size_t i = 0; i < n; i++)
		out[i] = (float)d[i];
	cdm_free(d);
	cdm_prg_free(&g);
	return 0;
}

/* The public config of `model`: a model folder or a model share file. */
static int input_config(const char *model, struct cdm_unet_config *cfg, struct cdm_err *err)
{
	struct stat sb;
	if (stat(model, &sb) != 0)
		return cdm_fail(err, CDM_EINPUT, "%s: %s", model, strerror(errno));
	if (S_ISDIR(sb.st_mode)) {
		struct cdm_model_paths p;
		CDM_TRY(cdm_model_locate(&p, model, err));
		return cdm_unet_config_load(cfg, p.config, err);
	}
	cdm_share *sh = NULL;
	CDM_TRY(cdm_share_open(&sh, model, "model", err));
	const char *text = cdm_share_meta(sh, "config");
	char what[CDM_PATH_MAX + 16];
	snprintf(what, sizeof what, "%s: config", model);
	int rc = text ? cdm_unet_config_parse(cfg, text, strlen(text), what, err)
		      : cdm_fail(err, CDM_EINPUT, "%s: no config metadata", model);
	cdm_share_close(sh);
	return rc;
}

/* x_T from a user's file: tensor `x` (or the only tensor), [B,C,H,W]. */
static int load_noise(const char *path, const struct cdm_unet_config *cfg, int64_t shape[4],
		      float **out, struct cdm_err *err)
{
	cdm_st *st = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	const struct cdm_st_tensor *t = cdm_st_find(st, "x");
	if (!t && cdm_st_count(st) == 1)
		t = cdm_st_at(st, 0);
	int rc = 0;
	if (!t)
		rc = cdm_fail(err, CDM_EINPUT, "%s: no tensor 'x'", path);
	else if (t->ndim != 4 || t->shape[1] != cfg->in_channels ||
		 (cfg->sample_h && (t->shape[2] != cfg->sample_h || t->shape[3] != cfg->sample_w)) ||
		 t->shape[0] < 1 || t->shape[0] > CDM_SAMPLE_MAX_BATCH)
		rc = cdm_fail(err, CDM_EINPUT, "%s: tensor '%s' must be [B,%lld,%lld,%lld] with "
			      "1 <= B <= %d", path, t->name, (long long)cfg->in_channels,
			      (long long)cfg->sample_h, (long long)cfg->sample_w,
			      CDM_SAMPLE_MAX_BATCH);
	if (rc == 0) {
		memcpy(shape, t->shape, 4 * sizeof *shape);
		if (!(*out = cdm_alloc(t->numel, 4, err)))
			rc = CDM_ENOMEM;
		else if ((rc = cdm_st_to_f32(st, t, *out, err)) < 0) {
			cdm_free(*out);
			*out = NULL;
		}
	}
	cdm_st_close(st);
	return rc;
}

static int dump_noise(const char *path, const int64_t shape[4], const float *x,
		      struct cdm_err *err)
{
	cdm_st_writer *w = NULL;
	CDM_TRY(cdm_st_writer_new(&w, err));
	int rc = cdm_st_writer_add(w, "x", CDM_F32, 4, shape, x, err);
	if (rc == 0)
		rc = cdm_st_writer_save(w, path, 0600, 0, err);
	cdm_st_writer_free(w);
	return rc;
}

/* The plaintext input: shape, integer one-hot labels, optional x_T. */
struct plain_input {
	int64_t shape[4];
	int64_t K;           /* one-hot width, 0 = no labels */
	uint64_t *onehot;    /* [B*K] integers */
	uint64_t *noise;     /* [B*C*H*W] fixed point, or NULL */
	float *seed_x;       /* x_T of --seed (for --dump-noise), or NULL */
};

static int resolve_batch(const struct cdm_input_spec *in, int64_t noise_b, int64_t *B,
			 struct cdm_err *err)
{
	int64_t b = in->batch ? in->batch : noise_b ? noise_b : in->nlabels > 1 ? in->nlabels : 1;
	if (b < 1 || b > CDM_SAMPLE_MAX_BATCH)
		return cdm_fail(err, CDM_EINPUT, "batch %lld outside 1..%d", (long long)b,
				CDM_SAMPLE_MAX_BATCH);
	if (noise_b && noise_b != b)
		return cdm_fail(err, CDM_EINPUT, "%s holds %lld samples but the batch is %lld",
				in->noise_path, (long long)noise_b, (long long)b);
	if (in->nlabels > 1 && in->nlabels != b)
		return cdm_fail(err, CDM_EINPUT, "%d labels for a batch of %lld (give one, or one "
				"per sample)", in->nlabels, (long long)b);
	*B = b;
	return 0;
}

static int build_input(const char *model, const struct cdm_input_spec *in, int frac,
		       struct plain_input *pi, struct cdm_err *err)
{
	struct cdm_unet_config cfg;
	float *x = NULL;
	memset(pi, 0, sizeof *pi);
	CDM_TRY(input_config(model, &cfg, err));
	if (in->has_seed && in->noise_path)
		return cdm_fail(err, CDM_EINPUT, "--seed and --noise exclude each other");
	if (in->dump_noise && !in->has_seed)
		return cdm_fail(err, CDM_EINPUT, "--dump-noise needs --seed");
	if (cfg.num_class_embeds && !in->nlabels)
		return cdm_fail(err, CDM_EINPUT, "%s: the model is class-conditional "
				"(%lld classes): give --label", model, (long long)cfg.num_class_embeds);
	if (!cfg.num_class_embeds && in->nlabels)
		return cdm_fail(err, CDM_EINPUT, "%s: the model has no class embedding: --label "
				"is not accepted", model);
	int64_t nb = 0, B = 1;
	if (in->noise_path) {
		CDM_TRY(load_noise(in->noise_path, &cfg, pi->shape, &x, err));
		nb = pi->shape[0];
	} else if (!cfg.sample_h) {
		return cdm_fail(err, CDM_EINPUT, "%s: sample_size is null: give --noise to set the "
				"sample shape", model);
	}
	int rc = resolve_batch(in, nb, &B, err);
	pi->shape[0] = B, pi->shape[1] = cfg.in_channels;
	pi->shape[2] = cfg.sample_h ? cfg.sample_h : pi->shape[2];
	pi->shape[3] = cfg.sample_w ? cfg.sample_w : pi->shape[3];
	size_t n = (size_t)(B * pi->shape[1] * pi->shape[2] * pi->shape[3]);
	for (int i = 0; rc == 0 && i < in->nlabels; i++)
		if (in->labels[i] < 0 || in->labels[i] >= cfg.num_class_embeds)
			rc = cdm_fail(err, CDM_EINPUT, "--label %lld outside 0..%lld",
				      (long long)in->labels[i], (long long)cfg.num_class_embeds - 1);
	if (rc == 0 && in->nlabels) {
		pi->K = cfg.num_class_embeds;
		if (!(pi->onehot = cdm_zalloc((size_t)(B * pi->K), 8, err)))
			rc = CDM_ENOMEM;
		for (int64_t b = 0; rc == 0 && b < B; b++)
			pi->onehot[b * pi->K + in->labels[in->nlabels == 1 ? 0 : b]] = 1;
	}
	if (rc == 0 && in->has_seed) {
		if (!(x = cdm_alloc(n, 4, err)))
			rc = CDM_ENOMEM;
		else
			rc = cdm_sample_seed_noise(in->seed, x, n, err);
	}
	if (rc == 0 && x) {
		/* name the user's file: a NaN there is the user's to fix */
		char what[CDM_PATH_MAX + 32];
		snprintf(what, sizeof what, "%s: tensor 'x'", in->noise_path ? in->noise_path
									   : "--seed noise");
		if (!(pi->noise = cdm_alloc(n, 8, err)))
			rc = CDM_ENOMEM;
		else
			rc = cdm_fxp_encode_f32(pi->noise, x, n, frac, what, NULL, err);
	}
	if (in->has_seed)
		pi->seed_x = x;
	else
		cdm_free(x);
	return rc;
}

static int write_input_file(const struct plain_input *pi, int p, int frac, const char *id,
			    const uint8_t key[CDM_SEED_BYTES], const char *path, int zstd,
			    struct cdm_err *err)
{
	cdm_share_writer *w = NULL;
	char shape[128];
	snprintf(shape, sizeof shape, "%lld,%lld,%lld,%lld", (long long)pi->shape[0],
		 (long long)pi->shape[1], (long long)pi->shape[2], (long long)pi->shape[3]);
	size_t nx = (size_t)(pi->shape[0] * pi->shape[1] * pi->shape[2] * pi->shape[3]);
	size_t nl = (size_t)(pi->shape[0] * pi->K), nmax = nx > nl ? nx : nl;
	uint64_t *buf = cdm_alloc(nmax, 16, err);
	if (!buf)
		return CDM_ENOMEM;
	int rc = cdm_share_writer_new(&w, p, frac, id, "input", err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "shape", shape, err);
	if (rc == 0 && pi->onehot) {
		int64_t d[2] = {pi->shape[0], pi->K};
		if ((rc = split(key, 0, pi->onehot, nl, p, buf, buf + nl, err)) == 0)
			rc = cdm_share_writer_add(w, "label", 2, d, buf, buf + nl, err);
	}
	if (rc == 0 && pi->noise) {
		if ((rc = split(key, 1, pi->noise, nx, p, buf, buf + nx, err)) == 0)
			rc = cdm_share_writer_add(w, "noise", 4, pi->shape, buf, buf + nx, err);
	}
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, zstd, err);
	cdm_share_writer_free(w);
	cdm_free(buf);
	return rc;
}

int cdm_sample_share_input(const char *model, const char *prefix,
			   const struct cdm_input_spec *in, const struct cdm_share_opts *o,
			   struct cdm_err *err)
{
	struct plain_input pi;
	uint8_t key[CDM_SEED_BYTES];
	char id[CDM_SHARE_ID_LEN + 1];
	struct trio t;
	if (in->prompt || in->negative_prompt || cdm_sample_sd_is_pipeline(model) ||
	    cdm_sample_sd_is_share(model)) /* Stable Diffusion: sd_share.c */
		return cdm_sample_sd_share_input(model, prefix, in, o, err);
	int frac = frac_of(o, err);
	if (frac < 0)
		return frac;
	int rc = build_input(model, in, frac, &pi, err);
	if (rc == 0)
		rc = run_key(o, key, err);
	if (rc == 0)
		rc = cdm_share_new_id(id, err);
	if (rc == 0)
		rc = trio_init(&t, prefix, id, err);
	int started = rc == 0;
	for (int i = 0; rc == 0 && i < 3; i++) {
		rc = write_input_file(&pi, i, frac, id, key, t.tmp[i], o ? o->zstd_level : 0, err);
		t.saved[i] = rc == 0;
	}
	if (rc == 0)
		rc = trio_commit(&t, err);
	else if (started)
		trio_abort(&t);
	/* the plaintext x_T only once the shares exist */
	if (rc == 0 && in->dump_noise)
		rc = dump_noise(in->dump_noise, pi.shape, pi.seed_x, err);
	memset(key, 0, sizeof key);
	cdm_free(pi.seed_x);
	cdm_free(pi.onehot);
	cdm_free(pi.noise);
	return rc;
}

/* ---- for the Stable Diffusion files (sample_impl.h) ------------------------------------ */

int cdm_sample_split(const uint8_t key[CDM_SEED_BYTES], size_t t, const uint64_t *x, size_t n,
		     int p, uint64_t *a, uint64_t *b, struct cdm_err *err)
{
	return split(key, t, x, n, p, a, b, err);
}

int cdm_sample_run_key(const struct cdm_share_opts *o, uint8_t key[CDM_SEED_BYTES],
		       struct cdm_err *err)
{
	return run_key(o, key, err);
}

int cdm_sample_frac(const struct cdm_share_opts *o, struct cdm_err *err)
{
	return frac_of(o, err);
}

int cdm_sample_encode(const cdm_st *st, const struct cdm_st_tensor *t, int frac, uint64_t *out,
		      float *tmp, const char *file, struct cdm_err *err)
{
	return encode_tensor(st, t, frac, out, tmp, file, err);
}

int cdm_sample_write_trio(const char *prefix,
			  int (*fill)(void *arg, int p, const char *id, const char *path,
				      struct cdm_err *err),
			  void *arg, struct cdm_err *err)
{
	char id[CDM_SHARE_ID_LEN + 1];
	struct trio t;
	CDM_TRY(cdm_share_new_id(id, err));
	CDM_TRY(trio_init(&t, prefix, id, err));
	int rc = 0;
	for (int i = 0; rc == 0 && i < 3; i++) {
		rc = fill(arg, i, id, t.tmp[i], err);
		t.saved[i] = rc == 0;
	}
	if (rc == 0)
		return trio_commit(&t, err);
	trio_abort(&t);
	return rc;
}
