/*
 * sched: diffusers' schedulers -- DDPMScheduler, DDIMScheduler and
 * DPMSolverMultistepScheduler (DPM-Solver++ 2M) -- split into
 *   (a) PUBLIC per-step coefficients, computed from the scheduler config in
 *       float32 where diffusers uses float32 tensors (cdm_sampler_coefs), and
 *   (b) the tensor update, applied through the lib/nn op table
 *       (cdm_sampler_step), so a secure backend runs the same sampler.
 *
 * Owns: scheduler_config.json parsing with each scheduler's defaults
 * (reference/diffusers.md §3.1; DPM-Solver's own defaults, e.g. timestep
 * spacing "linspace"), beta schedules, alphas_cumprod, timesteps, step rules.
 * Does not own: the model, noise generation (the caller supplies z), files.
 *
 * Every step is one linear combination with public coefficients:
 *   x0     = x0_x*x + x0_m*m                     (then clamp or threshold)
 *   x_prev = k_x*x + k_x0*x0 + k_m*m + k_prev*x0_prev + sigma*z
 * where m is the model output (its first C channels), x0_prev the DPM++
 * history (the previous step's x0), z the step's noise. DDPM with learned
 * variances uses a tensor sigma instead (see struct cdm_step_coefs).
 *
 * Multistep state: DPM++ 2M needs the previous step's x0 prediction. It is
 * returned by cdm_sampler_step (x0_out) and passed back in the next step;
 * cdm-unet-step carries it in its output file.
 *
 * Thread-safety: a cdm_sampler is immutable after creation.
 */
#ifndef CDM_SCHED_H
#define CDM_SCHED_H

#include <stdint.h>

#include "../base/base.h"
#include "../nn/nn.h"

enum cdm_sampler_kind { CDM_SAMPLER_DDPM, CDM_SAMPLER_DDIM, CDM_SAMPLER_DPMPP };
enum cdm_beta_schedule { CDM_BETA_LINEAR, CDM_BETA_SCALED_LINEAR, CDM_BETA_SQUAREDCOS,
			 CDM_BETA_SIGMOID };
enum cdm_prediction { CDM_PRED_EPSILON, CDM_PRED_SAMPLE, CDM_PRED_V };
enum cdm_spacing { CDM_SPACING_LEADING, CDM_SPACING_TRAILING, CDM_SPACING_LINSPACE };
enum cdm_variance { CDM_VAR_NONE, CDM_VAR_FIXED_SMALL, CDM_VAR_FIXED_SMALL_LOG,
		    CDM_VAR_FIXED_LARGE, CDM_VAR_LEARNED, CDM_VAR_LEARNED_RANGE };

struct cdm_sched_config {
	enum cdm_sampler_kind kind;  /* whose defaults were applied */
	int64_t num_train_timesteps;
	double beta_start, beta_end;
	enum cdm_beta_schedule beta_schedule;
	double *trained_betas;       /* [num_train_timesteps] or NULL (owned) */
	enum cdm_prediction prediction_type;
	int clip_sample;             /* DDPM/DDIM only */
	double clip_sample_range;
	int thresholding;
	double dynamic_thresholding_ratio, sample_max_value;
	enum cdm_spacing timestep_spacing;
	int64_t steps_offset;
	int rescale_betas_zero_snr;
	enum cdm_variance variance_type; /* DDPM: fixed_small default; others NONE */
	int set_alpha_to_one;        /* DDIM */
	int use_clipped_model_output; /* DDIM step argument (pipeline default false) */
	/* DPM-Solver++ */
	int solver_order;            /* 1 or 2 */
	int solver_heun;             /* solver_type "heun" (else "midpoint") */
	int lower_order_final, euler_at_final;
	int final_sigmas_zero;       /* final_sigmas_type "zero" (else "sigma_min") */
	double lambda_min_clipped;   /* -inf by default */
};

/* Defaults of `kind` (no file). */
void cdm_sched_config_default(struct cdm_sched_config *cfg, enum cdm_sampler_kind kind);
/* Parse scheduler_config.json text with the defaults of `kind`; keys of
 * other schedulers are ignored as diffusers' from_config does. Unsupported
 * values (fixed_large_log, karras sigmas, ...) are refused naming key and
 * value. */
int cdm_sched_config_parse(struct cdm_sched_config *cfg, enum cdm_sampler_kind kind,
			   const char *text, size_t len, const char *what, struct cdm_err *err);
/* path NULL or "" = defaults. */
int cdm_sched_config_load(struct cdm_sched_config *cfg, enum cdm_sampler_kind kind,
			  const char *path, struct cdm_err *err);
void cdm_sched_config_clear(struct cdm_sched_config *cfg); /* frees trained_betas */
/* "ddpm", "ddim", "dpmpp" (also "dpm++", "dpmsolver++"). */
int cdm_sampler_kind_parse(const char *name, enum cdm_sampler_kind *out);
const char *cdm_sampler_kind_name(enum cdm_sampler_kind kind);

/* Public coefficients of one step (see the formulas above). */
struct cdm_step_coefs {
	int64_t t, prev_t;           /* prev_t -1 after the last DDPM/DDIM step */
	double x0_x, x0_m;
	int clip, threshold;         /* clamp x0 to +-clip_range / dynamic thresholding */
	double clip_range;
	double k_x, k_x0, k_m, k_prev;
	int needs_noise;             /* z is used in this step */
	double sigma;                /* noise std (fixed variances, DDIM eta) */
	/* DDPM learned variances (v = model output channels C..2C):
	 * learned: sigma = sqrt(v); learned_range: sigma = exp(lv_a*v + lv_b). */
	int sigma_kind;              /* 0 fixed, 1 learned, 2 learned_range */
	double lv_a, lv_b;
	int order;                   /* DPM++: 1 or 2 (2 needs x0_prev) */
};

typedef struct cdm_sampler cdm_sampler;

/* A sampler with `steps` inference steps (set_timesteps(steps)); eta is
 * DDIM's (ignored otherwise). cfg is copied. */
int cdm_sampler_new(cdm_sampler **out, const struct cdm_sched_config *cfg,
		    enum cdm_sampler_kind kind, int64_t steps, double eta, struct cdm_err *err);
void cdm_sampler_free(cdm_sampler *s);

int64_t cdm_sampler_steps(const cdm_sampler *s);
const int64_t *cdm_sampler_timesteps(const cdm_sampler *s); /* [steps], descending */
const float *cdm_sampler_alphas_cumprod(const cdm_sampler *s); /* [T], float32 as torch */
const float *cdm_sampler_betas(const cdm_sampler *s);
const float *cdm_sampler_sigmas(const cdm_sampler *s); /* DPM++: [steps+1], else NULL */
const struct cdm_sched_config *cdm_sampler_config(const cdm_sampler *s);
/* Index of timestep t in the schedule, or CDM_EINPUT naming t. */
int cdm_sampler_index(const cdm_sampler *s, int64_t t, int64_t *k, struct cdm_err *err);

int cdm_sampler_coefs(const cdm_sampler *s, int64_t k, struct cdm_step_coefs *c,
		      struct cdm_err *err);

/* One step at index k: x [B,C,H,W], model_out [B,C or 2C,H,W], noise z
 * [B,C,H,W] (required when coefs.needs_noise, else ignored), x0_prev (DPM++
 * history; required when coefs.order == 2, else ignored). *x_prev is new;
 * if x0_out is not NULL it receives this step's x0 prediction (the history
 * for the next DPM++ step). */
int cdm_sampler_step(const cdm_sampler *s, cdm_nn *nn, int64_t k, const cdm_tensor *x,
		     const cdm_tensor *model_out, const cdm_tensor *noise,
		     const cdm_tensor *x0_prev, cdm_tensor **x_prev, cdm_tensor **x0_out,
		     struct cdm_err *err);

#endif
