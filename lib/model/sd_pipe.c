/* model/sd_pipe: file-to-file plaintext runs of the SD components (see sd_pipe.h). */
#include "sd_pipe.h"

#include <stdio.h>
#include <string.h>

#include "clip.h"
#include "tokenizer.h"
#include "vae.h"

/* Tensor `name` of st as a new plain tensor of rank ndim. */
static int load_float(cdm_nn *nn, const cdm_st *st, const char *name, int ndim,
		      const char *expect, cdm_tensor **out, struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_st_find(st, name);
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor '%s'", cdm_st_path(st), name);
	if (t->ndim != ndim)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%s' has %d dimensions, expected %s",
				cdm_st_path(st), name, t->ndim, expect);
	float *d = NULL;
	CDM_TRY(cdm_st_load_f32(st, name, ndim, t->shape, &d, err));
	int rc = cdm_nn_public(nn, ndim, t->shape, d, out, err);
	cdm_free(d);
	return rc;
}

static int writer_with(cdm_nn *nn, const char *name, const cdm_tensor *t, cdm_st_writer **out,
		       struct cdm_err *err)
{
	float *d = cdm_alloc((size_t)cdm_tensor_numel(t), sizeof *d, err);
	if (!d)
		return CDM_ENOMEM;
	int rc = cdm_nn_read(nn, t, d, err);
	if (rc == 0 && (rc = cdm_st_writer_new(out, err)) == 0 &&
	    (rc = cdm_st_writer_add(*out, name, CDM_F32, t->ndim, t->dim, d, err)) < 0) {
		cdm_st_writer_free(*out);
		*out = NULL;
	}
	cdm_free(d);
	return rc;
}

int cdm_sd_vae_decode_st(const char *model_dir, const cdm_st *in, cdm_st_writer **out,
			 struct cdm_err *err)
{
	cdm_nn *nn = NULL;
	cdm_vae *v = NULL;
	cdm_tensor *z = NULL, *x = NULL;
	int rc;
	*out = NULL;
	/* `x`: sampler latents, scaled here; `z`: already scaled */
	int latents = !cdm_st_find(in, "z") && cdm_st_find(in, "x");
	if (!latents && !cdm_st_find(in, "z"))
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor 'z' (nor sampler latents 'x')",
				cdm_st_path(in));
	if ((rc = cdm_nn_plain_new(&nn, err)) < 0 || (rc = cdm_vae_load(&v, nn, model_dir, err)) < 0 ||
	    (rc = load_float(nn, in, latents ? "x" : "z", 4, "[B,C,h,w]", &z, err)) < 0)
		goto done;
	if (latents) {
		float *d = cdm_nn_plain_data(z);
		double sf = cdm_vae_config(v)->scaling_factor;
		for (int64_t i = 0; i < cdm_tensor_numel(z); i++)
			d[i] = (float)(d[i] / sf);
	}
	if ((rc = cdm_vae_check_input(v, z->ndim, z->dim, err)) < 0) {
		cdm_err_prefix(err, "%s: ", cdm_st_path(in));
		goto done;
	}
	if ((rc = cdm_vae_decode(v, z, &x, err)) < 0)
		goto done;
	rc = writer_with(nn, "x", x, out, err);
done:
	if (nn) {
		cdm_nn_free(nn, z);
		cdm_nn_free(nn, x);
	}
	cdm_vae_free(v);
	cdm_nn_plain_free(nn);
	return rc;
}

/* ids [B,L] as int64 (from I64 or I32). */
static int load_ids(const cdm_st *in, int64_t **ids, int64_t *b, int64_t *l,
		    struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_st_find(in, "ids");
	if (!t)
		t = cdm_st_find(in, "input_ids");
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor 'ids'", cdm_st_path(in));
	if (t->ndim != 2 || (t->dtype != CDM_I64 && t->dtype != CDM_I32) || !t->numel)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%s' must be I64 (or I32) [B,L], is %s "
				"with %d dimensions", cdm_st_path(in), t->name,
				cdm_dtype_name(t->dtype), t->ndim);
	*b = t->shape[0];
	*l = t->shape[1];
	if (!(*ids = cdm_alloc((size_t)t->numel, sizeof **ids, err)))
		return CDM_ENOMEM;
	for (uint64_t i = 0; i < t->numel; i++) {
		if (t->dtype == CDM_I64) {
			memcpy(*ids + i, t->data + 8 * i, 8);
		} else {
			int32_t v;
			memcpy(&v, t->data + 4 * i, 4);
			(*ids)[i] = v;
		}
	}
	return 0;
}

int cdm_sd_text_encode_st(const char *model_dir, const cdm_st *in, cdm_st_writer **out,
			  struct cdm_err *err)
{
	cdm_nn *nn = NULL;
	cdm_clip *c = NULL;
	cdm_tensor *h = NULL;
	int64_t *ids = NULL, b = 0, l = 0;
	int rc;
	*out = NULL;
	if ((rc = cdm_nn_plain_new(&nn, err)) < 0 || (rc = cdm_clip_load(&c, nn, model_dir, err)) < 0 ||
	    (rc = load_ids(in, &ids, &b, &l, err)) < 0)
		goto done;
	if ((rc = cdm_clip_encode_ids(c, ids, b, l, &h, err)) < 0) {
		cdm_err_prefix(err, "%s: ", cdm_st_path(in));
		goto done;
	}
	rc = writer_with(nn, "ctx", h, out, err);
done:
	cdm_free(ids);
	if (nn)
		cdm_nn_free(nn, h);
	cdm_clip_free(c);
	cdm_nn_plain_free(nn);
	return rc;
}

int cdm_sd_tokenize_st(const char *dir, const char *const *prompts, int n,
		       cdm_st_writer **out, struct cdm_err *err)
{
	cdm_tokenizer *t = NULL;
	int64_t *ids = NULL;
	int rc;
	*out = NULL;
	if (n < 1)
		return cdm_fail(err, CDM_EINPUT, "tokenize: no prompt given");
	if ((rc = cdm_tokenizer_load(&t, dir, err)) < 0)
		return rc;
	int64_t len = cdm_tokenizer_length(t);
	if (!(ids = cdm_alloc((size_t)n * (size_t)len, sizeof *ids, err))) {
		rc = CDM_ENOMEM;
		goto done;
	}
	for (int i = 0; i < n; i++)
		if ((rc = cdm_tokenizer_encode(t, prompts[i], ids + (int64_t)i * len, len, err)) < 0)
			goto done;
	int64_t shape[2] = {n, len};
	if ((rc = cdm_st_writer_new(out, err)) == 0 &&
	    (rc = cdm_st_writer_add(*out, "ids", CDM_I64, 2, shape, ids, err)) < 0) {
		cdm_st_writer_free(*out);
		*out = NULL;
	}
done:
	cdm_free(ids);
	cdm_tokenizer_free(t);
	return rc;
}

int cdm_sd_load_ctx(cdm_nn *nn, const char *path, cdm_tensor **ctx, struct cdm_err *err)
{
	cdm_st *st = NULL;
	*ctx = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	const char *name = cdm_st_find(st, "ctx")                     ? "ctx"
			   : cdm_st_find(st, "encoder_hidden_states") ? "encoder_hidden_states"
			   : cdm_st_count(st) == 1                    ? cdm_st_at(st, 0)->name
								      : "ctx";
	int rc = load_float(nn, st, name, 3, "[B,L,D]", ctx, err);
	cdm_st_close(st);
	return rc;
}

/* ---- classifier-free guidance -------------------------------------------------- */

/* x as [1, numel]: batch concatenation and slicing become channel ops. */
static int flat(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err)
{
	int64_t d[2] = {1, cdm_tensor_numel(x)};
	return cdm_nn_reshape(nn, x, 2, d, out, err);
}

int cdm_sd_batch_cat(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
		     struct cdm_err *err)
{
	cdm_tensor *fa = NULL, *fb = NULL, *c = NULL;
	int64_t d[CDM_NN_MAX_DIMS];
	*out = NULL;
	if (a->ndim != b->ndim)
		return cdm_fail(err, CDM_EINPUT, "batch concat: %d and %d dimensions", a->ndim,
				b->ndim);
	for (int i = 1; i < a->ndim; i++)
		if (a->dim[i] != b->dim[i])
			return cdm_fail(err, CDM_EINPUT, "batch concat: dimension %d differs (%lld, "
					"%lld)", i, (long long)a->dim[i], (long long)b->dim[i]);
	memcpy(d, a->dim, sizeof d);
	d[0] = a->dim[0] + b->dim[0];
	int rc = flat(nn, a, &fa, err);
	if (rc == 0)
		rc = flat(nn, b, &fb, err);
	if (rc == 0)
		rc = cdm_nn_concat(nn, fa, fb, &c, err);
	if (rc == 0)
		rc = cdm_nn_reshape(nn, c, a->ndim, d, out, err);
	cdm_nn_free(nn, fa);
	cdm_nn_free(nn, fb);
	cdm_nn_free(nn, c);
	return rc;
}

int cdm_sd_batch_slice(cdm_nn *nn, const cdm_tensor *x, int64_t start, int64_t len,
		       cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *fx = NULL, *s = NULL;
	int64_t d[CDM_NN_MAX_DIMS];
	*out = NULL;
	if (start < 0 || len < 1 || start + len > x->dim[0])
		return cdm_fail(err, CDM_EINPUT, "batch slice [%lld,%lld) of %lld", (long long)start,
				(long long)(start + len), (long long)x->dim[0]);
	int64_t row = cdm_tensor_numel(x) / x->dim[0];
	memcpy(d, x->dim, sizeof d);
	d[0] = len;
	int rc = flat(nn, x, &fx, err);
	if (rc == 0)
		rc = cdm_nn_slice(nn, fx, start * row, len * row, &s, err);
	if (rc == 0)
		rc = cdm_nn_reshape(nn, s, x->ndim, d, out, err);
	cdm_nn_free(nn, fx);
	cdm_nn_free(nn, s);
	return rc;
}

/* `n` copies of row `r` of x along the batch, appended to *acc. */
static int append_rows(cdm_nn *nn, cdm_tensor **acc, const cdm_tensor *x, int64_t r, int64_t n,
		       struct cdm_err *err)
{
	cdm_tensor *row = NULL;
	CDM_TRY(cdm_sd_batch_slice(nn, x, r, 1, &row, err));
	int rc = 0;
	for (int64_t i = 0; rc == 0 && i < n; i++) {
		cdm_tensor *next = NULL;
		if (!*acc) {
			rc = cdm_sd_batch_slice(nn, row, 0, 1, &next, err);
		} else {
			rc = cdm_sd_batch_cat(nn, *acc, row, &next, err);
			cdm_nn_free(nn, *acc);
		}
		*acc = next;
	}
	cdm_nn_free(nn, row);
	return rc;
}

int cdm_sd_expand_ctx(cdm_nn *nn, const cdm_tensor *ctx, int64_t batch, cdm_tensor **out,
		      struct cdm_err *err)
{
	*out = NULL;
	if (ctx->ndim != 3 || (ctx->dim[0] != 2 && ctx->dim[0] != 2 * batch))
		return cdm_fail(err, CDM_EINPUT, "guidance: the context must be [2,L,D] or "
				"[%lld,L,D] ([uncond; cond]), is %dD with batch %lld",
				(long long)(2 * batch), ctx->ndim, (long long)ctx->dim[0]);
	if (ctx->dim[0] == 2 * batch)
		return cdm_sd_batch_slice(nn, ctx, 0, 2 * batch, out, err);
	int rc = append_rows(nn, out, ctx, 0, batch, err);
	if (rc == 0)
		rc = append_rows(nn, out, ctx, 1, batch, err);
	if (rc < 0) {
		cdm_nn_free(nn, *out);
		*out = NULL;
	}
	return rc;
}

int cdm_sd_guided_eps(cdm_nn *nn, cdm_unet_cond *u, const cdm_tensor *x, const double *t,
		      const cdm_tensor *ctx, double scale, cdm_tensor **eps,
		      struct cdm_err *err)
{
	cdm_tensor *x2 = NULL, *e2 = NULL, *eu = NULL, *ec = NULL;
	int64_t B = x->dim[0];
	*eps = NULL;
	if (B > 4096)
		return cdm_fail(err, CDM_EINPUT, "guidance: batch %lld too large", (long long)B);
	if (scale <= 1) { /* diffusers: no guidance, the prompt (second half) alone */
		cdm_tensor *cc = NULL;
		int rc = cdm_sd_batch_slice(nn, ctx, ctx->dim[0] / 2, ctx->dim[0] / 2, &cc, err);
		if (rc == 0)
			rc = cdm_unet_cond_forward(u, x, t, cc, eps, err);
		cdm_nn_free(nn, cc);
		return rc;
	}
	double *t2 = cdm_alloc((size_t)(2 * B), sizeof *t2, err);
	if (!t2)
		return CDM_ENOMEM;
	for (int64_t b = 0; b < B; b++)
		t2[b] = t2[B + b] = t[b];
	int rc = cdm_sd_batch_cat(nn, x, x, &x2, err);
	if (rc == 0)
		rc = cdm_unet_cond_forward(u, x2, t2, ctx, &e2, err);
	if (rc == 0)
		rc = cdm_sd_batch_slice(nn, e2, 0, B, &eu, err);
	if (rc == 0)
		rc = cdm_sd_batch_slice(nn, e2, B, B, &ec, err);
	if (rc == 0)
		rc = cdm_nn_axpby(nn, 1.0 - scale, eu, scale, ec, eps, err);
	cdm_free(t2);
	cdm_nn_free(nn, x2);
	cdm_nn_free(nn, e2);
	cdm_nn_free(nn, eu);
	cdm_nn_free(nn, ec);
	return rc;
}
