/*
 * sample/sample_impl: internal to lib/sample -- the pieces of share.c and
 * sample.c that the Stable Diffusion files (sd_share.c, sd_sample.c) reuse,
 * and the SD entry points that share.c and sample.c dispatch to.
 *
 * Owns nothing new: each function is documented where it is defined.
 * The SD share layout (model shares of a pipeline, prompt input shares) is
 * described in sd_share.c; the SD party loop in sd_sample.c.
 * Thread-safety: as sample.h.
 */
#ifndef CDM_SAMPLE_IMPL_H
#define CDM_SAMPLE_IMPL_H

#include "sample.h"

#include <openssl/evp.h>

#include "../nn/nn.h"
#include "../prg/prg.h"

/* Metadata key/value marking SD pipeline shares (model and input). */
#define CDM_SD_PIPELINE_KEY "pipeline"
#define CDM_SD_PIPELINE_VALUE "stable-diffusion"

/* ---- from share.c ---- */
/* Party p's components (x_p, x_{p+1}) of the encoded tensor x, the masks
 * derived from key and the tensor index t. */
int cdm_sample_split(const uint8_t key[CDM_SEED_BYTES], size_t t, const uint64_t *x, size_t n,
		     int p, uint64_t *a, uint64_t *b, struct cdm_err *err);
/* ---- from model_seed.c: seed-derived model shares (format 2) ---- */
/* Declare party p's seeded components on w (before any tensor). */
int cdm_sample_writer_seeds(cdm_share_writer *w, const uint8_t key[CDM_SEED_BYTES], int p,
			    struct cdm_err *err);
/* Party p's stored component of the encoded tensor `name` (x_2 into b for
 * party 1, into a for party 2; nothing for party 0). */
int cdm_sample_split_seeded(const uint8_t key[CDM_SEED_BYTES], const char *name,
			    const uint64_t *x, size_t n, int p, uint64_t *a, uint64_t *b,
			    struct cdm_err *err);
/* The run's mask key (o->seed in test mode, else the OS) and fraction bits
 * (negative: an error). */
int cdm_sample_run_key(const struct cdm_share_opts *o, uint8_t key[CDM_SEED_BYTES],
		       struct cdm_err *err);
int cdm_sample_frac(const struct cdm_share_opts *o, struct cdm_err *err);
/* Encode one float tensor of st in fixed point (out: numel values; tmp:
 * numel floats of scratch); `file` names it in errors. */
int cdm_sample_encode(const cdm_st *st, const struct cdm_st_tensor *t, int frac, uint64_t *out,
		      float *tmp, const char *file, struct cdm_err *err);
/* prefix.0/.1/.2 together or not at all: fill(arg, p, id, tmp_path) writes
 * party p's file to tmp_path; all three are then renamed. id is a fresh
 * sharing id. */
int cdm_sample_write_trio(const char *prefix,
			  int (*fill)(void *arg, int p, const char *id, const char *path,
				      struct cdm_err *err),
			  void *arg, struct cdm_err *err);

/* ---- from sample.c ---- */
/* One round: the run digest (a NUL-padded string of 512 bytes) to both
 * peers; a mismatch names the first differing key=value. */
#define CDM_SAMPLE_DIGEST_LEN 512
int cdm_sample_agree(cdm_mpc *m, const char *digest, struct cdm_err *err);
/* Feed a file's bytes into the digest ctx (the public model ids of both
 * drivers). */
int cdm_sample_hash_file(EVP_MD_CTX *ctx, const char *path, struct cdm_err *err);
/* Secret tensor `name` of a share as a new tensor of a secure backend. */
int cdm_sample_input_tensor(cdm_nn *nn, cdm_share *in, const char *name, int ndim,
			    const int64_t *shape, int integer, cdm_tensor **out,
			    struct cdm_err *err);
/* Add a session's per-label costs to res (`skip`: a label to leave out). */
void cdm_sample_add_costs(struct cdm_sample_result *res, const cdm_mpc *m, const char *skip);
/* This party's seed of a fresh run: o->party_seed, else derived from the
 * test o->noise_seed and the party id, else from the OS. */
int cdm_sample_party_seed(const struct cdm_sample_opts *o, int id,
			  uint8_t seed[CDM_SEED_BYTES], struct cdm_err *err);
/* Joint noise sub-stream `index` (0: x_T, k + 1: step k's noise) as a new
 * secret tensor of nn of the given shape. */
int cdm_sample_joint_tensor(cdm_nn *nn, cdm_noise *noise, const int64_t shape[4],
			    uint64_t index, cdm_tensor **out, struct cdm_err *err);
/* Step k of the sampler on the secret state (*x, *x0_prev) from the model
 * output eps (the caller's): draws the step's joint noise when the sampler
 * needs it (label "noise" on m), runs the step under the "sampler" label,
 * and replaces *x and *x0_prev. Shared by the UNet and the SD drivers. */
int cdm_sample_advance(cdm_nn *nn, cdm_mpc *m, cdm_noise *noise, const cdm_sampler *sampler,
		       int64_t k, const int64_t shape[4], const cdm_tensor *eps, cdm_tensor **x,
		       cdm_tensor **x0_prev, struct cdm_err *err);
/* "B,C,H,W" metadata of an input share. */
int cdm_sample_parse_shape(const cdm_share *in, int64_t shape[4], struct cdm_err *err);

/* ---- sd_share.c / sd_sample.c ---- */
/* 1 if dir is an SD pipeline folder (model_index.json and a
 * UNet2DConditionModel in unet/), else 0. */
int cdm_sample_sd_is_pipeline(const char *dir);
/* 1 if the model share file at path is an SD pipeline share; 0 if not (or
 * unreadable: the regular path then reports the problem). */
int cdm_sample_sd_is_share(const char *path);
int cdm_sample_sd_share_model(const char *dir, const char *prefix,
			      const struct cdm_share_opts *o, struct cdm_err *err);
int cdm_sample_sd_share_input(const char *model, const char *prefix,
			      const struct cdm_input_spec *in, const struct cdm_share_opts *o,
			      struct cdm_err *err);
int cdm_sample_sd_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		      const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		      struct cdm_err *err);

#endif
