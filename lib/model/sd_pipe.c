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
	if ((rc = cdm_nn_plain_new(&nn, err)) < 0 || (rc = cdm_vae_load(&v, nn, model_dir, err)) < 0 ||
	    (rc = load_float(nn, in, "z", 4, "[B,C,h,w]", &z, err)) < 0)
		goto done;
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
