/*
 * sample: secure sampling end to end -- producing the share files (model
 * owner and user side) and running a whole sampling loop on shares (party
 * side), with the same lib/model UNet and lib/sched samplers as the
 * plaintext path, over the secure backend of lib/nn/secure.h.
 *
 * Owns: the share-file layout of model and input shares (which tensors,
 * which metadata), the agreement check between the three parties, the
 * jointly generated noise, the sampling loop and the output share.
 * Does not own: the transport or the session (the caller connects and makes
 * the cdm_mpc), printing (progress goes through a callback), files other
 * than the shares it is asked to write.
 *
 * Input shares hold, besides the standard metadata (lib/fmt/share.h):
 *   "shape"  "B,C,H,W" of the sample;
 *   tensor "label" [B,K]  integer one-hot (0/1, NOT fixed point), present
 *                         for class-conditional models;
 *   tensor "noise" [B,C,H,W] fixed-point x_T, present when the user chose
 *                         it (--seed or --noise); otherwise the parties
 *                         generate x_T jointly.
 * Output shares hold tensor "x" [B,C,H,W] (fixed point) with metadata
 * "model_sharing" and "input_sharing" naming where they came from.
 *
 * Joint noise. Each party draws a private Gaussian tensor g_i (its own AES
 * PRG, seeded from the OS, or from a test seed), and the parties share the
 * sum in one round: z_i = enc(g_i/sqrt(3)) + r_i - r_{i+1} (r_j from a seed
 * known to parties j-1 and j only) goes to party i-1, so party i ends with
 * (z_i, z_{i+1}), a replicated sharing of sum_i g_i/sqrt(3) ~ N(0,1) that
 * no party knows (each misses two of the three terms).
 *
 * Thread-safety: a run uses its cdm_mpc's thread; the share writers are
 * single-threaded. No globals.
 */
#ifndef CDM_SAMPLE_H
#define CDM_SAMPLE_H

#include <stdint.h>

#include "../base/base.h"
#include "../fmt/share.h"
#include "../mpc/mpc.h"
#include "../nonlin/nonlin.h"
#include "../sched/sched.h"

#define CDM_SAMPLE_MAX_BATCH 1024
#define CDM_SAMPLE_RUN_LEN 448 /* bytes of a run's identity string */

/* ---- producing shares (cdm-share) ---------------------------------------- */

struct cdm_share_opts {
	int frac_bits;          /* 0 = CDM_FRAC_BITS_DEFAULT */
	const uint8_t *seed;    /* test mode: derive the share masks from these 16
				 * bytes; NULL = OS randomness */
	int zstd_level;         /* > 0 compresses the files */
};

/* MODEL_DIR (a diffusers folder) -> prefix.0, prefix.1, prefix.2. Every
 * weight tensor is encoded (NaN/Inf: an error naming the tensor) and split
 * x = x0 + x1 + x2 with x0, x1 pseudo-random from two seeds (share format 2,
 * model_seed.c: file 0 holds both seeds, file 1 x1's seed and x2, file 2 x2
 * and x0's seed); file i holds (x_i, x_{i+1}). The
 * three files appear together or not at all (temporaries, then renames).
 * A Stable Diffusion pipeline folder (model_index.json, UNet2DConditionModel)
 * gives one share per party of the UNet, the VAE decoder and the text
 * encoder, with the configs, scheduler and tokenizer as public metadata
 * (layout: sd_share.c); cdm_sample_run then runs the SD loop (sd_sample.c). */
int cdm_sample_share_model(const char *model_dir, const char *prefix,
			   const struct cdm_share_opts *o, struct cdm_err *err);

struct cdm_input_spec {
	int64_t batch;            /* >= 1; 0 = number of labels (or 1) */
	const int64_t *labels;    /* nlabels labels: 1 (for every element) or batch */
	int nlabels;              /* 0: none (unconditional model) */
	int has_seed;             /* x_T = N(0,1) from an AES PRG keyed by seed */
	uint64_t seed;
	const char *noise_path;   /* x_T from tensor `x` (or the only tensor) of this
				   * F32 safetensors file */
	const char *dump_noise;   /* with has_seed: also write x_T (tensor `x`) here */
	const char *prompt;       /* Stable Diffusion: the prompt (tokenized here,
				   * shared as integer one-hot ids), or NULL */
	const char *negative_prompt; /* SD: the unconditional prompt (NULL: "") */
};

/* The user's input (model: a model folder, or a model share file, for the
 * public config only) -> prefix.0/.1/.2 input shares. For a Stable
 * Diffusion pipeline (folder or share) the input is a prompt: input shares
 * then hold, besides "shape" (of the latents x_T) and the optional
 * "noise", tensor "ids" [2L,V]: the integer one-hot token ids of the
 * negative prompt (rows 0..L-1) and of the prompt (rows L..2L-1), L the
 * tokenizer length, V the text encoder's vocabulary; metadata "pipeline"
 * "stable-diffusion" and "prompt_len" L. One prompt serves the batch. */
int cdm_sample_share_input(const char *model, const char *prefix,
			   const struct cdm_input_spec *in, const struct cdm_share_opts *o,
			   struct cdm_err *err);

/* x_T of a seed: n standard normals (float32) from AES-CTR keyed by the
 * seed (little-endian u64 in the first 8 key bytes), sub-stream "x_T". */
int cdm_sample_seed_noise(uint64_t seed, float *out, size_t n, struct cdm_err *err);

/* ---- joint noise ---------------------------------------------------------- */

typedef struct cdm_noise cdm_noise;

/* One round: each party sends its mask seed to the previous party. seed
 * (16 bytes, this party's private seed; tests may give all three the same)
 * makes this party's mask seed and private Gaussian stream deterministic
 * (derived with the party id); NULL = OS randomness. */
int cdm_noise_new(cdm_noise **out, cdm_mpc *m, const uint8_t *seed, struct cdm_err *err);
/* Restart the three streams at sub-stream `index` (no communication; the
 * three parties must seek alike). Draws after a seek depend only on the
 * seeds and the index, never on earlier draws: a resumed run that seeks
 * to the step it restarts at draws exactly the noise of an uninterrupted
 * run. */
int cdm_noise_seek(cdm_noise *g, uint64_t index, struct cdm_err *err);
/* A fresh replicated sharing of n N(0,1) values (fixed point) in one round,
 * 8 bytes per element per party. out is allocated when zeroed. */
int cdm_noise_draw(cdm_noise *g, cdm_shr *out, size_t n, struct cdm_err *err);
void cdm_noise_free(cdm_noise *g); /* accepts NULL */

/* ---- the party side (cdm-party) ---------------------------------------------- */

struct cdm_sample_opts {
	enum cdm_sampler_kind sampler;
	int64_t steps;
	double eta;                 /* DDIM only */
	enum cdm_suite suite;
	const uint8_t *noise_seed;  /* test mode: private noise PRGs from these 16
				     * bytes and the party id; NULL = OS */
	const uint8_t *party_seed;  /* 16 bytes: this party's private seed, from
				     * which every random stream of the run
				     * derives (NULL: from noise_seed and the
				     * party id in test mode, else the OS) */
	const char *public_model;   /* public-model mode: a plaintext model folder
				     * (the model argument of cdm_sample_run is
				     * then NULL); weights public, data secret */
	const char *checkpoint_dir; /* write checkpoints here (NULL: none) */
	int64_t checkpoint_every;   /* every K completed steps (0 = 5) */
	int resume;                 /* start from the newest checkpoint step the
				     * three parties hold in checkpoint_dir */
	double guidance;            /* Stable Diffusion: classifier-free guidance
				     * scale (cdm-party's default 7.5); <= 1: the
				     * prompt alone, as diffusers */
	/* Called after each step (k = 1..steps); may be NULL. */
	void (*progress)(void *arg, int64_t k, int64_t steps);
	void *progress_arg;
};

struct cdm_sample_result {
	cdm_shr x;                  /* this party's sharing of the sample [B,C,H,W] */
	int64_t shape[4];
	char sharing_id[CDM_SHARE_ID_LEN + 1]; /* common to the three outputs */
	char model_id[80];          /* model sharing id, or "public:<sha256 prefix>" */
	int64_t resumed_from;       /* completed steps at start (0: a fresh run) */
	struct cdm_cost cost[CDM_MPC_MAX_LABELS]; /* per label, every session */
	size_t ncost;
	char run[CDM_SAMPLE_RUN_LEN]; /* the run's identity (checkpoints' "run") */
};

/* Run the whole sampling loop. Checks first, in one round, that the three
 * parties use the same model and input sharings, sampler, steps, eta, suite,
 * fraction bits and checkpoint settings (a mismatch is CDM_EINPUT naming
 * both values). model and input must belong to this party (cdm_mpc_id).
 *
 * Randomness: m serves the setup rounds only; each step k runs on a fresh
 * session whose seeds derive from this party's seed and k, and the joint
 * noise of step k is sub-stream k+1 (x_T: 0). So the run is a function of
 * the three party seeds, and a resumed run repeats an uninterrupted one
 * bit for bit. Costs one extra round (the session's seed exchange) per step.
 *
 * Checkpoints (o->checkpoint_dir, see ckpt.h): after every K completed
 * steps (not after the last), the newest two kept. Resume: the parties
 * exchange their checkpoint lists in one round and continue from the
 * newest step all three hold (same sharing id); none anywhere: a fresh
 * run; none in common: CDM_EINPUT listing each party's steps.
 *
 * res->x is allocated; release with cdm_sample_result_clear. */
int cdm_sample_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		   const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		   struct cdm_err *err);
void cdm_sample_result_clear(struct cdm_sample_result *res);

/* End of a run with o->checkpoint_dir (no-op without): one round in which
 * each party tells the others it has written its output share (call it
 * after cdm_sample_write_output), then, unless keep, removal of this
 * party's checkpoints of this run (other files in the directory and the
 * directory itself stay). A checkpoint is only worth keeping while some
 * party may still need to resume; once all three outputs exist, none does.
 * If the round fails (a peer died before writing its output) nothing is
 * removed, so the three can still be restarted with --resume, and the
 * network error is returned. */
int cdm_sample_end_checkpoints(cdm_mpc *m, const struct cdm_sample_opts *o,
			       const struct cdm_sample_result *res, int keep,
			       struct cdm_err *err);

/* Write res as this party's output share file (kind output, 0600, atomic). */
int cdm_sample_write_output(const char *path, int party, int frac_bits,
			    const struct cdm_sample_result *res, const char *model_sharing,
			    const char *input_sharing, struct cdm_err *err);

/* Check that a share file belongs to party `id` and is of `kind`
 * ("model.1: is an input share, expected a model share", "model.1: is
 * party 2's share, expected party 1's"). */
int cdm_sample_check_share(const cdm_share *sh, int id, const char *kind, struct cdm_err *err);

#endif
