/*
 * sched: DDPM, DDIM and DPM-Solver++ as diffusers computes them (see sched.h).
 *
 * Precision notes (to stay within ~1 ulp of torch):
 * - betas are float32 (torch.linspace in float32: start + step*i for the first
 *   half, end - step*(n-1-i) for the second, step = (end-start)/(n-1) in
 *   float32); alphas = 1 - betas in float32; alphas_cumprod is torch.cumprod,
 *   which on the CPU accumulates float32 inputs in double and stores float32.
 * - per-step scalars follow diffusers' float32 tensor arithmetic.
 * - numpy rounding (timesteps) is round-half-to-even: rint().
 */
#define _GNU_SOURCE
#include "sched.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cdm_sampler {
	struct cdm_sched_config cfg;
	enum cdm_sampler_kind kind;
	int64_t T, n;
	double eta;
	float *betas, *ac;       /* [T] */
	float final_ac;          /* DDIM final_alpha_cumprod */
	int64_t *ts;             /* [n] */
	float *sigmas;           /* DPM++: [n+1] */
};

/* ---- config ----------------------------------------------------------------- */

void cdm_sched_config_default(struct cdm_sched_config *c, enum cdm_sampler_kind kind)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->num_train_timesteps = 1000;
	c->beta_start = 1e-4;
	c->beta_end = 0.02;
	c->beta_schedule = CDM_BETA_LINEAR;
	c->prediction_type = CDM_PRED_EPSILON;
	c->clip_sample = kind != CDM_SAMPLER_DPMPP;
	c->clip_sample_range = 1.0;
	c->dynamic_thresholding_ratio = 0.995;
	c->sample_max_value = 1.0;
	c->timestep_spacing = kind == CDM_SAMPLER_DPMPP ? CDM_SPACING_LINSPACE : CDM_SPACING_LEADING;
	c->variance_type = kind == CDM_SAMPLER_DDPM ? CDM_VAR_FIXED_SMALL : CDM_VAR_NONE;
	c->set_alpha_to_one = 1;
	c->solver_order = 2;
	c->lower_order_final = 1;
	c->final_sigmas_zero = 1;
	c->lambda_min_clipped = -INFINITY;
}

void cdm_sched_config_clear(struct cdm_sched_config *c)
{
	cdm_free(c->trained_betas);
	c->trained_betas = NULL;
}

struct sp {
	const json_t *o;
	const char *what;
	struct cdm_err *err;
};

static int bad_type(struct sp *p, const char *key, const char *want)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: key '%s': expected %s", p->what, key, want);
}

static int refuse(struct sp *p, const char *key, const char *val)
{
	return cdm_fail(p->err, CDM_EINPUT, "%s: %s = '%s' is not supported", p->what, key,
			val ? val : "null");
}

/* Missing or null keep the default. */
static int s_num(struct sp *p, const char *key, double *out)
{
	const json_t *v = json_object_get(p->o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return bad_type(p, key, "a number");
	*out = json_number_value(v);
	return 0;
}

static int s_int(struct sp *p, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(p->o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return bad_type(p, key, "an integer");
	*out = json_integer_value(v);
	return 0;
}

static int s_bool(struct sp *p, const char *key, int *out)
{
	const json_t *v = json_object_get(p->o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad_type(p, key, "true or false");
	*out = json_is_true(v);
	return 0;
}

/* A string key among names[] (count n): *out = its index. Missing keeps *out;
 * null gives -1 when allow_null, else an error. */
static int s_enum(struct sp *p, const char *key, const char *const *names, int n, int *out,
		  int allow_null)
{
	const json_t *v = json_object_get(p->o, key);
	if (!v)
		return 0;
	if (json_is_null(v)) {
		if (allow_null) {
			*out = -1;
			return 0;
		}
		return refuse(p, key, NULL);
	}
	if (!json_is_string(v))
		return bad_type(p, key, "a string");
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(json_string_value(v), names[i])) {
			*out = i;
			return 0;
		}
	return refuse(p, key, json_string_value(v));
}

static int s_trained_betas(struct sp *p, struct cdm_sched_config *c)
{
	const json_t *v = json_object_get(p->o, "trained_betas");
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) < 2 || json_array_size(v) > 100000)
		return bad_type(p, "trained_betas", "an array of 2 to 100000 numbers");
	size_t n = json_array_size(v);
	c->trained_betas = cdm_alloc(n, sizeof(double), p->err);
	if (!c->trained_betas)
		return CDM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		double b = json_is_number(e) ? json_number_value(e) : -1;
		if (!(b > 0 && b < 1))
			return bad_type(p, "trained_betas", "numbers in (0,1)");
		c->trained_betas[i] = b;
	}
	/* diffusers: trained_betas override the schedule and set its length */
	c->num_train_timesteps = (int64_t)n;
	return 0;
}

static int parse_dpm(struct sp *p, struct cdm_sched_config *c)
{
	static const char *const algo[] = {"dpmsolver++"};
	static const char *const solver[] = {"midpoint", "heun"};
	static const char *const finals[] = {"zero", "sigma_min"};
	int i = 0, flag = 0;
	CDM_TRY(s_enum(p, "algorithm_type", algo, 1, &i, 0));
	int64_t order = c->solver_order;
	CDM_TRY(s_int(p, "solver_order", &order));
	if (order != 1 && order != 2) {
		char b[32];
		snprintf(b, sizeof b, "%lld", (long long)order);
		return refuse(p, "solver_order", b);
	}
	c->solver_order = (int)order;
	i = 0;
	CDM_TRY(s_enum(p, "solver_type", solver, 2, &i, 0));
	c->solver_heun = i == 1;
	CDM_TRY(s_bool(p, "lower_order_final", &c->lower_order_final));
	CDM_TRY(s_bool(p, "euler_at_final", &c->euler_at_final));
	i = 0;
	CDM_TRY(s_enum(p, "final_sigmas_type", finals, 2, &i, 0));
	c->final_sigmas_zero = i == 0;
	CDM_TRY(s_num(p, "lambda_min_clipped", &c->lambda_min_clipped));
	static const char *const off[] = {"use_karras_sigmas", "use_exponential_sigmas",
					  "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas"};
	for (size_t k = 0; k < sizeof off / sizeof *off; k++) {
		flag = 0;
		CDM_TRY(s_bool(p, off[k], &flag));
		if (flag)
			return refuse(p, off[k], "true");
	}
	static const char *const var[] = {NULL, NULL, NULL, NULL, "learned", "learned_range"};
	const json_t *vt = json_object_get(p->o, "variance_type");
	/* DPM only looks at learned variances (to drop the variance channels). */
	if (vt && json_is_string(vt)) {
		int k = -1;
		for (int j = 4; j < 6; j++)
			if (!strcmp(json_string_value(vt), var[j]))
				k = j;
		c->variance_type = k > 0 ? (enum cdm_variance)k : CDM_VAR_NONE;
	}
	return 0;
}

static int parse_obj(struct sp *p, struct cdm_sched_config *c)
{
	static const char *const sched[] = {"linear", "scaled_linear", "squaredcos_cap_v2",
					    "sigmoid"};
	static const char *const pred[] = {"epsilon", "sample", "v_prediction"};
	static const char *const spacing[] = {"leading", "trailing", "linspace"};
	static const char *const var[] = {NULL, "fixed_small", "fixed_small_log", "fixed_large",
					  "learned", "learned_range"};
	int i;
	CDM_TRY(s_int(p, "num_train_timesteps", &c->num_train_timesteps));
	if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
		return bad_type(p, "num_train_timesteps", "an integer in 2..100000");
	CDM_TRY(s_num(p, "beta_start", &c->beta_start));
	CDM_TRY(s_num(p, "beta_end", &c->beta_end));
	if (!(c->beta_start > 0 && c->beta_end < 1 && c->beta_start <= c->beta_end))
		return bad_type(p, "beta_start/beta_end", "0 < beta_start <= beta_end < 1");
	i = (int)c->beta_schedule;
	CDM_TRY(s_enum(p, "beta_schedule", sched, c->kind == CDM_SAMPLER_DDPM ? 4 : 3, &i, 0));
	c->beta_schedule = (enum cdm_beta_schedule)i;
	CDM_TRY(s_trained_betas(p, c));
	i = (int)c->prediction_type;
	CDM_TRY(s_enum(p, "prediction_type", pred, 3, &i, 0));
	c->prediction_type = (enum cdm_prediction)i;
	if (c->kind != CDM_SAMPLER_DPMPP) {
		CDM_TRY(s_bool(p, "clip_sample", &c->clip_sample));
		CDM_TRY(s_num(p, "clip_sample_range", &c->clip_sample_range));
		if (!(c->clip_sample_range > 0))
			return bad_type(p, "clip_sample_range", "a number > 0");
	}
	CDM_TRY(s_bool(p, "thresholding", &c->thresholding));
	CDM_TRY(s_num(p, "dynamic_thresholding_ratio", &c->dynamic_thresholding_ratio));
	CDM_TRY(s_num(p, "sample_max_value", &c->sample_max_value));
	if (c->thresholding && (!(c->dynamic_thresholding_ratio >= 0 &&
				  c->dynamic_thresholding_ratio <= 1) || !(c->sample_max_value >= 1)))
		return bad_type(p, "dynamic_thresholding_ratio/sample_max_value",
				"a ratio in [0,1] and a maximum >= 1");
	i = (int)c->timestep_spacing;
	CDM_TRY(s_enum(p, "timestep_spacing", spacing, 3, &i, 0));
	c->timestep_spacing = (enum cdm_spacing)i;
	CDM_TRY(s_int(p, "steps_offset", &c->steps_offset));
	if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
		return bad_type(p, "steps_offset", "an integer in 0..num_train_timesteps-1");
	CDM_TRY(s_bool(p, "rescale_betas_zero_snr", &c->rescale_betas_zero_snr));
	if (c->kind == CDM_SAMPLER_DDPM) {
		const json_t *v = json_object_get(p->o, "variance_type");
		if (v && json_is_string(v) && !strcmp(json_string_value(v), "fixed_large_log"))
			return cdm_fail(p->err, CDM_EINPUT,
					"%s: variance_type = 'fixed_large_log' is not supported "
					"(diffusers takes the square root of a log variance: NaN)",
					p->what);
		i = (int)c->variance_type;
		CDM_TRY(s_enum(p, "variance_type", var, 6, &i, 0));
		c->variance_type = (enum cdm_variance)i;
	}
	if (c->kind == CDM_SAMPLER_DDIM)
		CDM_TRY(s_bool(p, "set_alpha_to_one", &c->set_alpha_to_one));
	if (c->kind == CDM_SAMPLER_DPMPP)
		CDM_TRY(parse_dpm(p, c));
	return 0;
}

int cdm_sched_config_parse(struct cdm_sched_config *cfg, enum cdm_sampler_kind kind,
			   const char *text, size_t len, const char *what, struct cdm_err *err)
{
	cdm_sched_config_default(cfg, kind);
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return cdm_fail(err, CDM_EINPUT, "%s: line %d column %d: %s", what, je.line,
				je.column, je.text);
	int rc;
	if (!json_is_object(root)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: not a JSON object", what);
	} else {
		struct sp p = {root, what, err};
		rc = parse_obj(&p, cfg);
	}
	json_decref(root);
	if (rc < 0)
		cdm_sched_config_clear(cfg);
	return rc;
}

int cdm_sched_config_load(struct cdm_sched_config *cfg, enum cdm_sampler_kind kind,
			  const char *path, struct cdm_err *err)
{
	if (!path || !*path) {
		cdm_sched_config_default(cfg, kind);
		return 0;
	}
	FILE *f = fopen(path, "rb");
	if (!f)
		return cdm_fail(err, CDM_EIO, "%s: cannot open: %m", path);
	enum { MAX = 8 << 20 }; /* trained_betas lists can be long */
	char *buf = cdm_alloc(MAX + 1, 1, err);
	if (!buf) {
		fclose(f);
		return CDM_ENOMEM;
	}
	size_t n = fread(buf, 1, MAX + 1, f);
	int bad = ferror(f) || n > MAX;
	fclose(f);
	int rc = bad ? cdm_fail(err, CDM_EINPUT, "%s: unreadable or larger than 8 MiB", path)
		     : cdm_sched_config_parse(cfg, kind, buf, n, path, err);
	cdm_free(buf);
	return rc;
}

int cdm_sampler_kind_parse(const char *name, enum cdm_sampler_kind *out)
{
	if (!strcmp(name, "ddpm"))
		*out = CDM_SAMPLER_DDPM;
	else if (!strcmp(name, "ddim"))
		*out = CDM_SAMPLER_DDIM;
	else if (!strcmp(name, "dpmpp") || !strcmp(name, "dpm++") || !strcmp(name, "dpmsolver++"))
		*out = CDM_SAMPLER_DPMPP;
	else
		return CDM_EINPUT;
	return 0;
}

const char *cdm_sampler_kind_name(enum cdm_sampler_kind kind)
{
	return kind == CDM_SAMPLER_DDPM ? "ddpm" : kind == CDM_SAMPLER_DDIM ? "ddim" : "dpmpp";
}

/* ---- schedules ----------------------------------------------------------------- */

/* torch.linspace(start, end, n, dtype=float32) on the CPU. */
static void linspace_f32(float start, float end, int64_t n, float *out)
{
	float step = (end - start) / (float)(n - 1);
	int64_t half = n / 2;
	for (int64_t i = 0; i < n; i++)
		out[i] = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
}

static double alpha_bar_cos(double t)
{
	double c = cos((t + 0.008) / 1.008 * M_PI / 2);
	return c * c;
}

/* cumprod of 1 - betas, double accumulation, float32 results. */
static void cumprod(const float *betas, int64_t T, float *ac)
{
	double acc = 1.0;
	for (int64_t i = 0; i < T; i++) {
		acc *= (double)(1.0f - betas[i]);
		ac[i] = (float)acc;
	}
}

static void make_betas(const struct cdm_sched_config *c, float *b)
{
	int64_t T = c->num_train_timesteps;
	if (c->trained_betas) {
		for (int64_t i = 0; i < T; i++)
			b[i] = (float)c->trained_betas[i];
		return;
	}
	switch (c->beta_schedule) {
	case CDM_BETA_LINEAR:
		linspace_f32((float)c->beta_start, (float)c->beta_end, T, b);
		break;
	case CDM_BETA_SCALED_LINEAR:
		linspace_f32((float)sqrt(c->beta_start), (float)sqrt(c->beta_end), T, b);
		for (int64_t i = 0; i < T; i++)
			b[i] = b[i] * b[i];
		break;
	case CDM_BETA_SQUAREDCOS:
		/* betas_for_alpha_bar in Python floats, max_beta 0.999 */
		for (int64_t i = 0; i < T; i++) {
			double t1 = (double)i / (double)T, t2 = (double)(i + 1) / (double)T;
			double beta = 1 - alpha_bar_cos(t2) / alpha_bar_cos(t1);
			b[i] = (float)(beta < 0.999 ? beta : 0.999);
		}
		break;
	case CDM_BETA_SIGMOID:
		linspace_f32(-6.0f, 6.0f, T, b);
		for (int64_t i = 0; i < T; i++) {
			float s = 1.0f / (1.0f + expf(-b[i]));
			b[i] = s * (float)(c->beta_end - c->beta_start) + (float)c->beta_start;
		}
		break;
	}
	if (c->rescale_betas_zero_snr) {
		/* rescale_zero_terminal_snr: shift/scale sqrt(alphas_cumprod) so the last
		 * is 0 and the first unchanged, then recover betas. */
		float *ac = malloc((size_t)T * sizeof *ac);
		if (!ac)
			return;
		cumprod(b, T, ac);
		float a0 = sqrtf(ac[0]), aT = sqrtf(ac[T - 1]);
		for (int64_t i = 0; i < T; i++) {
			float s = (sqrtf(ac[i]) - aT) * (a0 / (a0 - aT));
			ac[i] = s * s;
		}
		b[0] = 1.0f - ac[0];
		for (int64_t i = 1; i < T; i++)
			b[i] = 1.0f - ac[i] / ac[i - 1];
		free(ac);
	}
}

/* numpy: arange(start, stop, step) length. */
static int64_t arange_len(double start, double stop, double step)
{
	double n = ceil((stop - start) / step);
	return n > 0 ? (int64_t)n : 0;
}

/* set_timesteps of DDPM/DDIM (n = steps). */
static int ts_ddim(cdm_sampler *s, struct cdm_err *err)
{
	const struct cdm_sched_config *c = &s->cfg;
	int64_t T = s->T, n = s->n;
	switch (c->timestep_spacing) {
	case CDM_SPACING_LEADING: {
		int64_t r = T / n;
		for (int64_t k = 0; k < n; k++)
			s->ts[k] = (n - 1 - k) * r + c->steps_offset;
		break;
	}
	case CDM_SPACING_TRAILING: {
		double r = (double)T / (double)n;
		if (arange_len((double)T, 0, -r) != n)
			return cdm_fail(err, CDM_EINPUT, "trailing spacing of %lld steps over %lld "
					"timesteps is not well defined", (long long)n, (long long)T);
		for (int64_t k = 0; k < n; k++)
			s->ts[k] = (int64_t)rint((double)T - (double)k * r) - 1;
		break;
	}
	case CDM_SPACING_LINSPACE: {
		double step = n > 1 ? (double)(T - 1) / (double)(n - 1) : 0;
		for (int64_t k = 0; k < n; k++) {
			int64_t i = n - 1 - k;
			s->ts[k] = i == n - 1 && n > 1 ? T - 1 : (int64_t)rint((double)i * step);
		}
		break;
	}
	}
	return 0;
}

/* DPMSolverMultistepScheduler.set_timesteps: timesteps and sigmas. */
static int ts_dpm(cdm_sampler *s, struct cdm_err *err)
{
	const struct cdm_sched_config *c = &s->cfg;
	int64_t T = s->T, n = s->n;
	/* clipped_idx = searchsorted(flip(lambda_t), lambda_min_clipped) */
	int64_t clipped = 0;
	for (int64_t i = 0; i < T; i++) {
		float a = sqrtf(s->ac[i]), sg = sqrtf(1.0f - s->ac[i]);
		if ((double)(logf(a) - logf(sg)) < c->lambda_min_clipped)
			clipped++;
	}
	int64_t last = T - clipped;
	if (last < n + 1)
		return cdm_fail(err, CDM_EINPUT, "dpmpp: %lld steps exceed the %lld usable timesteps",
				(long long)n, (long long)last);
	switch (c->timestep_spacing) {
	case CDM_SPACING_LINSPACE: {
		/* linspace(0, last-1, n+1).round()[::-1][:-1] */
		double step = (double)(last - 1) / (double)n;
		for (int64_t k = 0; k < n; k++) {
			int64_t i = n - k;
			s->ts[k] = i == n ? last - 1 : (int64_t)rint((double)i * step);
		}
		break;
	}
	case CDM_SPACING_LEADING: {
		int64_t r = last / (n + 1);
		for (int64_t k = 0; k < n; k++)
			s->ts[k] = (n - k) * r + c->steps_offset;
		break;
	}
	case CDM_SPACING_TRAILING: {
		double r = (double)T / (double)n;
		if (arange_len((double)last, 0, -r) != n)
			return cdm_fail(err, CDM_EINPUT, "dpmpp: trailing spacing of %lld steps is "
					"not well defined here", (long long)n);
		for (int64_t k = 0; k < n; k++)
			s->ts[k] = (int64_t)rint((double)last - (double)k * r) - 1;
		break;
	}
	}
	/* sigmas = ((1 - ac)/ac)^0.5 in float32, at the (integer) timesteps */
	for (int64_t k = 0; k < n; k++) {
		if (s->ts[k] < 0 || s->ts[k] >= T)
			return cdm_fail(err, CDM_EINPUT, "dpmpp: timestep %lld out of range",
					(long long)s->ts[k]);
		float a = s->ac[s->ts[k]];
		s->sigmas[k] = sqrtf((1.0f - a) / a);
	}
	s->sigmas[n] = c->final_sigmas_zero ? 0.0f : sqrtf((1.0f - s->ac[0]) / s->ac[0]);
	return 0;
}

int cdm_sampler_new(cdm_sampler **out, const struct cdm_sched_config *cfg,
		    enum cdm_sampler_kind kind, int64_t steps, double eta, struct cdm_err *err)
{
	*out = NULL;
	int64_t T = cfg->num_train_timesteps;
	if (steps < 1 || steps > T)
		return cdm_fail(err, CDM_EINPUT, "%s: %lld steps (1..%lld supported)",
				cdm_sampler_kind_name(kind), (long long)steps, (long long)T);
	if (!(eta >= 0 && eta <= 1e3))
		return cdm_fail(err, CDM_EINPUT, "eta %g must be >= 0", eta);
	cdm_sampler *s = cdm_zalloc(1, sizeof *s, err);
	if (!s)
		return CDM_ENOMEM;
	s->cfg = *cfg;
	s->cfg.trained_betas = NULL; /* betas are computed below; no ownership shared */
	s->kind = kind;
	s->T = T;
	s->n = steps;
	s->eta = kind == CDM_SAMPLER_DDIM ? eta : 0.0;
	s->betas = cdm_alloc((size_t)T, sizeof(float), err);
	s->ac = cdm_alloc((size_t)T, sizeof(float), err);
	s->ts = cdm_alloc((size_t)steps, sizeof(int64_t), err);
	s->sigmas = cdm_alloc((size_t)steps + 1, sizeof(float), err);
	int rc = CDM_ENOMEM;
	if (!s->betas || !s->ac || !s->ts || !s->sigmas)
		goto fail;
	make_betas(cfg, s->betas);
	cumprod(s->betas, T, s->ac);
	if (kind == CDM_SAMPLER_DPMPP && cfg->rescale_betas_zero_snr)
		s->ac[T - 1] = 0x1p-24f; /* as diffusers: avoid an infinite sigma */
	s->final_ac = cfg->set_alpha_to_one ? 1.0f : s->ac[0];
	rc = kind == CDM_SAMPLER_DPMPP ? ts_dpm(s, err) : ts_ddim(s, err);
	if (rc < 0)
		goto fail;
	for (int64_t k = 0; k < steps; k++)
		if (s->ts[k] < 0 || s->ts[k] >= T) {
			rc = cdm_fail(err, CDM_EINPUT, "%s: timestep %lld out of range 0..%lld",
				      cdm_sampler_kind_name(kind), (long long)s->ts[k],
				      (long long)(T - 1));
			goto fail;
		}
	*out = s;
	return 0;
fail:
	cdm_sampler_free(s);
	return rc;
}

void cdm_sampler_free(cdm_sampler *s)
{
	if (!s)
		return;
	cdm_free(s->betas);
	cdm_free(s->ac);
	cdm_free(s->ts);
	cdm_free(s->sigmas);
	cdm_free(s);
}

int64_t cdm_sampler_steps(const cdm_sampler *s) { return s->n; }
const int64_t *cdm_sampler_timesteps(const cdm_sampler *s) { return s->ts; }
const float *cdm_sampler_alphas_cumprod(const cdm_sampler *s) { return s->ac; }
const float *cdm_sampler_betas(const cdm_sampler *s) { return s->betas; }
const float *cdm_sampler_sigmas(const cdm_sampler *s)
{
	return s->kind == CDM_SAMPLER_DPMPP ? s->sigmas : NULL;
}
const struct cdm_sched_config *cdm_sampler_config(const cdm_sampler *s) { return &s->cfg; }

int cdm_sampler_index(const cdm_sampler *s, int64_t t, int64_t *k, struct cdm_err *err)
{
	for (int64_t i = 0; i < s->n; i++)
		if (s->ts[i] == t) {
			*k = i;
			return 0;
		}
	char list[96] = "";
	int64_t show = s->n < 6 ? s->n : 6;
	size_t off = 0;
	for (int64_t i = 0; i < show && off < sizeof list; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%lld", i ? "," : "",
					(long long)s->ts[i]);
	return cdm_fail(err, CDM_EINPUT, "timestep %lld is not one of the %lld %s timesteps (%s%s)",
			(long long)t, (long long)s->n, cdm_sampler_kind_name(s->kind), list,
			s->n > show ? ",..." : "");
}

/* ---- per-step coefficients -------------------------------------------------------- */

/* x0 from (x, m) with alpha = sqrt(ac_t), sigma = sqrt(1 - ac_t) (DDPM/DDIM) or
 * DPM's alpha_t, sigma_t. */
static void x0_coefs(enum cdm_prediction p, float alpha, float sigma, struct cdm_step_coefs *c)
{
	switch (p) {
	case CDM_PRED_EPSILON: /* (x - sigma m)/alpha */
		c->x0_x = 1.0 / alpha;
		c->x0_m = -(double)sigma / alpha;
		break;
	case CDM_PRED_SAMPLE:
		c->x0_x = 0;
		c->x0_m = 1;
		break;
	case CDM_PRED_V: /* alpha x - sigma m */
		c->x0_x = alpha;
		c->x0_m = -(double)sigma;
		break;
	}
}

static void coefs_ddpm(const cdm_sampler *s, int64_t k, struct cdm_step_coefs *c)
{
	const struct cdm_sched_config *cf = &s->cfg;
	int64_t t = s->ts[k], prev = k + 1 < s->n ? s->ts[k + 1] : -1;
	/* With N = T steps this is t - 1, as diffusers' previous_timestep. */
	float ac_t = s->ac[t], ac_p = prev >= 0 ? s->ac[prev] : 1.0f;
	float bpt = 1.0f - ac_t, bpp = 1.0f - ac_p;
	float cur_alpha = ac_t / ac_p, cur_beta = 1.0f - cur_alpha;
	c->prev_t = prev;
	x0_coefs(cf->prediction_type, sqrtf(ac_t), sqrtf(bpt), c);
	/* mu = (sqrt(ac_p) beta_t / (1-ac_t)) x0 + (sqrt(alpha_t) (1-ac_p) / (1-ac_t)) x */
	c->k_x0 = (double)(sqrtf(ac_p) * cur_beta / bpt);
	c->k_x = (double)(sqrtf(cur_alpha) * bpp / bpt);
	float var = bpp / bpt * cur_beta;
	var = var < 1e-20f ? 1e-20f : var;
	c->needs_noise = t > 0;
	switch (cf->variance_type) {
	case CDM_VAR_FIXED_SMALL:
		c->sigma = sqrtf(var);
		break;
	case CDM_VAR_FIXED_SMALL_LOG:
		c->sigma = expf(0.5f * logf(var));
		break;
	case CDM_VAR_FIXED_LARGE:
		c->sigma = sqrtf(cur_beta);
		break;
	case CDM_VAR_LEARNED:
		c->sigma_kind = 1;
		break;
	case CDM_VAR_LEARNED_RANGE: {
		/* log var = frac*ln(beta_t) + (1-frac)*ln(var), frac = (v+1)/2;
		 * sigma = exp(0.5 log var) = exp(0.25 (max-min) v + 0.25 (max+min)) */
		double mn = log((double)var), mx = log((double)cur_beta);
		c->sigma_kind = 2;
		c->lv_a = 0.25 * (mx - mn);
		c->lv_b = 0.25 * (mx + mn);
		break;
	}
	default:
		c->sigma = sqrtf(var);
		break;
	}
}

static void coefs_ddim(const cdm_sampler *s, int64_t k, struct cdm_step_coefs *c)
{
	const struct cdm_sched_config *cf = &s->cfg;
	int64_t t = s->ts[k], prev = t - s->T / s->n; /* whatever the spacing */
	float ac_t = s->ac[t], ac_p = prev >= 0 ? s->ac[prev] : s->final_ac;
	float bpt = 1.0f - ac_t, bpp = 1.0f - ac_p;
	double sa = sqrtf(ac_t), sb = sqrtf(bpt);
	c->prev_t = prev;
	x0_coefs(cf->prediction_type, (float)sa, (float)sb, c);
	/* eps_hat = e_x x + e_m m + e_x0 x0 */
	double e_x = 0, e_m = 0, e_x0 = 0;
	if (cf->use_clipped_model_output) {
		e_x = 1.0 / sb; /* (x - sqrt(ac_t) x0)/sqrt(1-ac_t), x0 after clipping */
		e_x0 = -sa / sb;
	} else if (cf->prediction_type == CDM_PRED_SAMPLE) {
		e_x = 1.0 / sb; /* the same with the unclipped x0 = m */
		e_m = -sa / sb;
	} else if (cf->prediction_type == CDM_PRED_EPSILON) {
		e_m = 1;
	} else { /* v: sqrt(ac_t) m + sqrt(1-ac_t) x */
		e_m = sa;
		e_x = sb;
	}
	float var = (bpp / bpt) * (1.0f - ac_t / ac_p);
	double std = s->eta * sqrt((double)var);
	double dir = 1.0 - (double)ac_p - std * std;
	double c_eps = dir > 0 ? sqrt(dir) : 0.0, c_x0 = sqrtf(ac_p);
	c->k_x = c_eps * e_x;
	c->k_x0 = c_x0 + c_eps * e_x0;
	c->k_m = c_eps * e_m;
	c->sigma = std;
	c->needs_noise = s->eta > 0;
}

/* DPM-Solver: alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma*alpha_t, lambda =
 * log alpha_t - log sigma_t (float32, as _sigma_to_alpha_sigma_t). */
static void dpm_as(float sigma, float *alpha, float *sig, float *lambda)
{
	*alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
	*sig = sigma * *alpha;
	*lambda = logf(*alpha) - logf(*sig);
}

static void coefs_dpm(const cdm_sampler *s, int64_t k, struct cdm_step_coefs *c)
{
	const struct cdm_sched_config *cf = &s->cfg;
	int64_t n = s->n;
	float a_t, s_t, l_t, a_s0, s_s0, l_s0;
	c->prev_t = k + 1 < n ? s->ts[k + 1] : -1;
	dpm_as(s->sigmas[k], &a_s0, &s_s0, &l_s0);
	/* convert_model_output (dpmsolver++): x0 with the current sigma; no clip */
	x0_coefs(cf->prediction_type, a_s0, s_s0, c);
	dpm_as(s->sigmas[k + 1], &a_t, &s_t, &l_t);
	int lower_final = k == n - 1 && (cf->euler_at_final ||
					 (cf->lower_order_final && n < 15) || cf->final_sigmas_zero);
	c->order = (cf->solver_order == 1 || k < 1 || lower_final) ? 1 : 2;
	float h = l_t - l_s0;
	float b = a_t * (expf(-h) - 1.0f);
	c->k_x = (double)(s_t / s_s0);
	if (c->order == 1) {
		/* x_t = (sigma_t/sigma_s) x - alpha_t (e^-h - 1) x0 */
		c->k_x0 = -(double)b;
		return;
	}
	float a_s1, s_s1, l_s1;
	dpm_as(s->sigmas[k - 1], &a_s1, &s_s1, &l_s1);
	float r0 = (l_s0 - l_s1) / h;
	/* D0 = m0, D1 = (m0 - m1)/r0.
	 * midpoint: x_t = k_x x - b D0 - 0.5 b D1
	 * heun:     x_t = k_x x - b D0 + alpha_t((e^-h - 1)/h + 1) D1 */
	double d1 = cf->solver_heun ? (double)(a_t * ((expf(-h) - 1.0f) / h + 1.0f))
				    : -0.5 * (double)b;
	c->k_x0 = -(double)b + d1 / r0;
	c->k_prev = -d1 / r0;
}

int cdm_sampler_coefs(const cdm_sampler *s, int64_t k, struct cdm_step_coefs *c,
		      struct cdm_err *err)
{
	if (k < 0 || k >= s->n)
		return cdm_fail(err, CDM_EINPUT, "step index %lld out of range 0..%lld", (long long)k,
				(long long)(s->n - 1));
	memset(c, 0, sizeof *c);
	c->t = s->ts[k];
	c->order = 1;
	if (s->cfg.thresholding) {
		c->threshold = 1;
	} else if (s->cfg.clip_sample && s->kind != CDM_SAMPLER_DPMPP) {
		c->clip = 1;
		c->clip_range = s->cfg.clip_sample_range;
	}
	if (s->kind == CDM_SAMPLER_DDPM)
		coefs_ddpm(s, k, c);
	else if (s->kind == CDM_SAMPLER_DDIM)
		coefs_ddim(s, k, c);
	else
		coefs_dpm(s, k, c);
	return 0;
}

/* ---- the tensor update --------------------------------------------------------------- */

int cdm_sampler_step(const cdm_sampler *s, cdm_nn *nn, int64_t k, const cdm_tensor *x,
		     const cdm_tensor *model_out, const cdm_tensor *noise,
		     const cdm_tensor *x0_prev, cdm_tensor **x_prev, cdm_tensor **x0_out,
		     struct cdm_err *err)
{
	struct cdm_step_coefs c;
	cdm_tensor *m = NULL, *v = NULL, *x0 = NULL, *tmp = NULL, *sig = NULL, *sz = NULL;
	int rc;
	*x_prev = NULL;
	if (x0_out)
		*x0_out = NULL;
	CDM_TRY(cdm_sampler_coefs(s, k, &c, err));
	int64_t C = x->dim[1];
	int learned = s->cfg.variance_type == CDM_VAR_LEARNED ||
		      s->cfg.variance_type == CDM_VAR_LEARNED_RANGE;
	if (x->ndim != 4 || model_out->ndim != 4 || model_out->dim[0] != x->dim[0] ||
	    model_out->dim[2] != x->dim[2] || model_out->dim[3] != x->dim[3] ||
	    !(model_out->dim[1] == C || (learned && model_out->dim[1] == 2 * C)))
		return cdm_fail(err, CDM_EINPUT, "model output has %lld channels for a sample of "
				"%lld (%s)", (long long)model_out->dim[1], (long long)C,
				learned ? "learned variance: expected 2C" : "expected C");
	if (learned && s->kind == CDM_SAMPLER_DDPM && model_out->dim[1] != 2 * C)
		return cdm_fail(err, CDM_EINPUT, "variance_type learned needs a model with %lld "
				"output channels, not %lld", (long long)(2 * C),
				(long long)model_out->dim[1]);
	if (c.needs_noise && (!noise || !cdm_tensor_same_shape(noise, x)))
		return cdm_fail(err, CDM_EINPUT, "%s step at t=%lld needs a noise tensor of the "
				"sample's shape", cdm_sampler_kind_name(s->kind), (long long)c.t);
	if (c.order == 2 && (!x0_prev || !cdm_tensor_same_shape(x0_prev, x)))
		return cdm_fail(err, CDM_EINPUT, "dpmpp step %lld (t=%lld) needs the previous "
				"step's x0 prediction", (long long)k, (long long)c.t);
	const cdm_tensor *mm = model_out;
	if (model_out->dim[1] != C) {
		if ((rc = cdm_nn_slice(nn, model_out, 0, C, &m, err)) < 0 ||
		    (rc = cdm_nn_slice(nn, model_out, C, C, &v, err)) < 0)
			goto done;
		mm = m;
	}
	/* x0 prediction, then clip or threshold */
	if ((rc = cdm_nn_axpby(nn, c.x0_x, x, c.x0_m, mm, &x0, err)) < 0)
		goto done;
	if (c.threshold || c.clip) {
		rc = c.threshold ? cdm_nn_threshold(nn, x0, s->cfg.dynamic_thresholding_ratio,
						    s->cfg.sample_max_value, &tmp, err)
				 : cdm_nn_clamp(nn, x0, -c.clip_range, c.clip_range, &tmp, err);
		if (rc < 0)
			goto done;
		cdm_nn_free(nn, x0);
		x0 = tmp;
		tmp = NULL;
	}
	const cdm_tensor *xs[5];
	double co[5];
	int nt = 0;
	xs[nt] = x, co[nt++] = c.k_x;
	xs[nt] = x0, co[nt++] = c.k_x0;
	if (c.k_m != 0)
		xs[nt] = mm, co[nt++] = c.k_m;
	if (c.order == 2)
		xs[nt] = x0_prev, co[nt++] = c.k_prev;
	if (c.needs_noise) {
		if (c.sigma_kind) {
			/* tensor sigma from the variance channels */
			rc = c.sigma_kind == 1 ? cdm_nn_act(nn, v, CDM_ACT_SQRT, &sig, err)
					       : cdm_nn_scale(nn, v, c.lv_a, c.lv_b, &tmp, err);
			if (rc < 0)
				goto done;
			if (c.sigma_kind == 2 &&
			    (rc = cdm_nn_act(nn, tmp, CDM_ACT_EXP, &sig, err)) < 0)
				goto done;
			if ((rc = cdm_nn_mul(nn, sig, noise, &sz, err)) < 0)
				goto done;
			xs[nt] = sz, co[nt++] = 1.0;
		} else {
			xs[nt] = noise, co[nt++] = c.sigma;
		}
	}
	if ((rc = cdm_nn_lincomb(nn, nt, xs, co, 0.0, x_prev, err)) < 0)
		goto done;
	if (x0_out) {
		*x0_out = x0;
		x0 = NULL;
	}
done:
	cdm_nn_free(nn, m);
	cdm_nn_free(nn, v);
	cdm_nn_free(nn, x0);
	cdm_nn_free(nn, tmp);
	cdm_nn_free(nn, sig);
	cdm_nn_free(nn, sz);
	return rc;
}
