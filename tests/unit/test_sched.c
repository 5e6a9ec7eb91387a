/*
 * test_sched: schedulers against values computed here independently in
 * float64 from the formulas of reference/diffusers.md §3 (and diffusers'
 * DPMSolverMultistepScheduler): alphas_cumprod reference values, the
 * timesteps of every spacing, one step of each sampler (DDPM with fixed and
 * learned variances, DDIM with eta 0 / eta > 0 / sample and v prediction,
 * DPM++ first order, second order and the final step), config parsing and
 * refusals, dynamic thresholding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/nn.h"
#include "sched/sched.h"

#define B 2
#define C 3
#define H 4
#define W 4
#define N (B * C * H * W)

static uint64_t rng;
static cdm_nn *nn;

static void rand_fill(float *v, int n, double lo, double hi)
{
	for (int i = 0; i < n; i++)
		v[i] = (float)check_uniform(&rng, lo, hi);
}

static cdm_tensor *mk(const float *v, int64_t c)
{
	struct cdm_err err;
	cdm_tensor *t = NULL;
	int64_t d[4] = {B, c, H, W};
	if (cdm_nn_public(nn, 4, d, v, &t, &err) < 0)
		fprintf(stderr, "tensor: %s\n", err.msg);
	return t;
}

static cdm_sampler *mk_sampler(enum cdm_sampler_kind kind, const char *json, int64_t steps,
			       double eta)
{
	struct cdm_sched_config cfg;
	struct cdm_err err = {0};
	cdm_sampler *s = NULL;
	int rc = json ? cdm_sched_config_parse(&cfg, kind, json, strlen(json), "test.json", &err)
		      : (cdm_sched_config_default(&cfg, kind), 0);
	if (rc == 0)
		rc = cdm_sampler_new(&s, &cfg, kind, steps, eta, &err);
	CHECK(rc == 0, "sampler %s %s: %s", cdm_sampler_kind_name(kind), json ? json : "",
	      err.msg);
	cdm_sched_config_clear(&cfg);
	return s;
}

/* max |got - want| / max |want| */
static double rel_err(const float *got, const double *want, int n)
{
	double md = 0, mw = 0;
	for (int i = 0; i < n; i++) {
		md = fmax(md, fabs(got[i] - want[i]));
		mw = fmax(mw, fabs(want[i]));
	}
	return md / (mw > 0 ? mw : 1);
}

static double clampd(double v, double r)
{
	return v < -r ? -r : v > r ? r : v;
}

static void test_alphas(void)
{
	cdm_sampler *s = mk_sampler(CDM_SAMPLER_DDPM, NULL, 1000, 0);
	if (!s)
		return;
	const float *ac = cdm_sampler_alphas_cumprod(s);
	/* reference values (diffusers.md §3.2) */
	CHECK(fabs(ac[0] - 0.9999) < 1e-7, "linear ac[0] %.9g", ac[0]);
	CHECK(fabs(ac[499] / 7.8587e-2 - 1) < 1e-4, "linear ac[499] %.9g", ac[499]);
	CHECK(fabs(ac[999] / 4.0358e-5 - 1) < 1e-4, "linear ac[999] %.9g", ac[999]);
	/* every value against a float64 product */
	double p = 1, worst = 0;
	for (int i = 0; i < 1000; i++) {
		p *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
		worst = fmax(worst, fabs(ac[i] / p - 1));
	}
	CHECK(worst < 2e-5, "linear alphas_cumprod max rel err %.3g", worst);
	cdm_sampler_free(s);

	s = mk_sampler(CDM_SAMPLER_DDIM,
		       "{\"beta_schedule\":\"scaled_linear\",\"beta_start\":0.00085,"
		       "\"beta_end\":0.012}", 50, 0);
	if (s) {
		ac = cdm_sampler_alphas_cumprod(s);
		CHECK(fabs(ac[0] / 0.99915 - 1) < 1e-6, "scaled_linear ac[0] %.9g", ac[0]);
		CHECK(fabs(ac[999] / 4.6601e-3 - 1) < 1e-4, "scaled_linear ac[999] %.9g", ac[999]);
		cdm_sampler_free(s);
	}
	s = mk_sampler(CDM_SAMPLER_DDIM, "{\"beta_schedule\":\"squaredcos_cap_v2\"}", 50, 0);
	if (s) {
		const float *b = cdm_sampler_betas(s);
		ac = cdm_sampler_alphas_cumprod(s);
		CHECK(fabs(b[999] - 0.999f) < 1e-7, "cos beta_999 capped: %.9g", b[999]);
		CHECK(fabs(ac[999] / 2.43e-9 - 1) < 1e-2, "cos ac[999] %.4g", ac[999]);
		double f0 = cos(0.008 / 1.008 * M_PI / 2), f1 = cos((0.001 + 0.008) / 1.008 * M_PI / 2);
		double b0 = 1 - (f1 * f1) / (f0 * f0);
		CHECK(fabs(b[0] / b0 - 1) < 1e-6, "cos beta_0 %.9g vs %.9g", b[0], b0);
		cdm_sampler_free(s);
	}
	s = mk_sampler(CDM_SAMPLER_DDPM, "{\"trained_betas\":[0.1,0.2,0.3,0.4]}", 4, 0);
	if (s) {
		ac = cdm_sampler_alphas_cumprod(s);
		CHECK(fabs(ac[3] - 0.9 * 0.8 * 0.7 * 0.6) < 1e-7, "trained betas ac[3] %.9g", ac[3]);
		cdm_sampler_free(s);
	}
}

static void check_ts(enum cdm_sampler_kind kind, const char *json, int64_t steps,
		     const int64_t *want, int nwant, const char *what)
{
	cdm_sampler *s = mk_sampler(kind, json, steps, 0);
	if (!s)
		return;
	const int64_t *ts = cdm_sampler_timesteps(s);
	int ok = cdm_sampler_steps(s) == steps;
	for (int i = 0; ok && i < nwant; i++)
		ok = ts[i] == want[i];
	CHECK(ok, "%s timesteps: got %lld, %lld, %lld, ... %lld", what, (long long)ts[0],
	      (long long)ts[1], (long long)ts[2], (long long)ts[steps - 1]);
	cdm_sampler_free(s);
}

static void test_timesteps(void)
{
	int64_t lead[50], lead1[50], trail[50], lin[50];
	for (int k = 0; k < 50; k++) {
		lead[k] = 980 - 20 * k;
		lead1[k] = lead[k] + 1;
		trail[k] = 999 - 20 * k;
		lin[k] = (int64_t)llrint((49 - k) * (999.0 / 49)); /* round half even */
	}
	check_ts(CDM_SAMPLER_DDIM, NULL, 50, lead, 50, "ddim leading");
	check_ts(CDM_SAMPLER_DDIM, "{\"steps_offset\":1}", 50, lead1, 50, "ddim leading+1");
	check_ts(CDM_SAMPLER_DDIM, "{\"timestep_spacing\":\"trailing\"}", 50, trail, 50,
		 "ddim trailing");
	check_ts(CDM_SAMPLER_DDIM, "{\"timestep_spacing\":\"linspace\"}", 50, lin, 50,
		 "ddim linspace");
	static const int64_t lin3[3] = {999, 979, 958};
	check_ts(CDM_SAMPLER_DDIM, "{\"timestep_spacing\":\"linspace\"}", 50, lin3, 3,
		 "ddim linspace head");
	int64_t all[1000];
	for (int k = 0; k < 1000; k++)
		all[k] = 999 - k;
	check_ts(CDM_SAMPLER_DDPM, NULL, 1000, all, 1000, "ddpm 1000");
	static const int64_t dpm20[20] = {999, 949, 899, 849, 799, 749, 699, 649, 599, 549,
					  500, 450, 400, 350, 300, 250, 200, 150, 100, 50};
	check_ts(CDM_SAMPLER_DPMPP, NULL, 20, dpm20, 20, "dpmpp linspace 20");
	/* DPM leading: r = 1000 // 11 = 90 -> 900, 810, ..., 90 */
	int64_t dl[10];
	for (int k = 0; k < 10; k++)
		dl[k] = 900 - 90 * k;
	check_ts(CDM_SAMPLER_DPMPP, "{\"timestep_spacing\":\"leading\"}", 10, dl, 10,
		 "dpmpp leading 10");
}

/* Run one step and compare to `want`. */
static void run_step(cdm_sampler *s, int64_t t, const float *x, const float *m, int64_t mc,
		     const float *z, const float *x0p, const double *want, const char *what,
		     float *x0_out)
{
	struct cdm_err err = {0};
	int64_t k = -1;
	CHECK(cdm_sampler_index(s, t, &k, &err) == 0, "%s: %s", what, err.msg);
	if (k < 0)
		return;
	cdm_tensor *tx = mk(x, C), *tm = mk(m, mc), *tz = z ? mk(z, C) : NULL,
		   *tp = x0p ? mk(x0p, C) : NULL, *out = NULL, *x0 = NULL;
	int rc = cdm_sampler_step(s, nn, k, tx, tm, tz, tp, &out, &x0, &err);
	CHECK(rc == 0, "%s: %s", what, err.msg);
	if (rc == 0) {
		double e = rel_err(cdm_nn_plain_data(out), want, N);
		CHECK(e < 1e-5, "%s: rel err %.3g", what, e);
		if (x0_out)
			memcpy(x0_out, cdm_nn_plain_data(x0), sizeof(float) * N);
	}
	cdm_nn_free(nn, tx);
	cdm_nn_free(nn, tm);
	cdm_nn_free(nn, tz);
	cdm_nn_free(nn, tp);
	cdm_nn_free(nn, out);
	cdm_nn_free(nn, x0);
}

static void test_ddpm(void)
{
	float x[N], m[2 * N], z[N];
	double want[N];
	rand_fill(x, N, -2, 2);
	rand_fill(m, 2 * N, -1.5, 1.5);
	rand_fill(z, N, -2, 2);
	const char *cfgs[3] = {NULL, "{\"variance_type\":\"fixed_large\"}",
			       "{\"variance_type\":\"fixed_small_log\",\"clip_sample\":false}"};
	for (int v = 0; v < 3; v++) {
		cdm_sampler *s = mk_sampler(CDM_SAMPLER_DDPM, cfgs[v], 1000, 0);
		if (!s)
			continue;
		const float *ac = cdm_sampler_alphas_cumprod(s);
		int64_t t = 500;
		double at = ac[t], ap = ac[t - 1], bt = 1 - at / ap;
		for (int i = 0; i < N; i++) {
			double x0 = (x[i] - sqrt(1 - at) * m[i]) / sqrt(at);
			if (v < 2)
				x0 = clampd(x0, 1);
			double mu = sqrt(ap) * bt / (1 - at) * x0 + sqrt(1 - bt) * (1 - ap) / (1 - at) * x[i];
			double var = (1 - ap) / (1 - at) * bt;
			double sig = v == 1 ? sqrt(bt) : sqrt(var);
			want[i] = mu + sig * z[i];
		}
		run_step(s, t, x, m, C, z, NULL, want, v == 0 ? "ddpm fixed_small" : v == 1 ?
			 "ddpm fixed_large" : "ddpm fixed_small_log", NULL);
		/* t = 0: no noise, prev alpha 1 */
		at = ac[0];
		for (int i = 0; i < N; i++) {
			double x0 = (x[i] - sqrt(1 - at) * m[i]) / sqrt(at);
			want[i] = v < 2 ? clampd(x0, 1) : x0;
		}
		run_step(s, 0, x, m, C, NULL, NULL, want, "ddpm t=0", NULL);
		cdm_sampler_free(s);
	}
	/* learned_range with v_prediction, 2C model output, 100 steps (leading) */
	cdm_sampler *s = mk_sampler(CDM_SAMPLER_DDPM, "{\"variance_type\":\"learned_range\","
				    "\"prediction_type\":\"v_prediction\"}", 100, 0);
	if (s) {
		const float *ac = cdm_sampler_alphas_cumprod(s);
		int64_t t = 500, tp = 490;
		double at = ac[t], ap = ac[tp], alpha = at / ap, bt = 1 - alpha;
		float mm[2 * N]; /* [B, 2C, H, W]: per batch C mean channels then C variance */
		memcpy(mm, m, sizeof mm);
		for (int b = 0; b < B; b++)
			for (int i = 0; i < C * H * W; i++) {
				int xi = b * C * H * W + i;
				double mo = mm[b * 2 * C * H * W + i], vv = mm[b * 2 * C * H * W + C * H * W + i];
				double x0 = clampd(sqrt(at) * x[xi] - sqrt(1 - at) * mo, 1);
				double mu = sqrt(ap) * bt / (1 - at) * x0 + sqrt(alpha) * (1 - ap) / (1 - at) * x[xi];
				double var = (1 - ap) / (1 - at) * bt;
				double frac = (vv + 1) / 2;
				double lv = frac * log(bt) + (1 - frac) * log(var);
				want[xi] = mu + exp(0.5 * lv) * z[xi];
			}
		run_step(s, t, x, mm, 2 * C, z, NULL, want, "ddpm learned_range v", NULL);
		cdm_sampler_free(s);
	}
}

static void test_ddim(void)
{
	float x[N], m[N], z[N];
	double want[N];
	rand_fill(x, N, -2, 2);
	rand_fill(m, N, -1.5, 1.5);
	rand_fill(z, N, -2, 2);
	for (int var = 0; var < 4; var++) {
		/* 0: eps, eta 0; 1: eps, eta 0.7 with noise; 2: sample pred; 3: v pred,
		 * trailing spacing (prev is still t - T/N) */
		static const char *cfg[4] = {NULL, NULL, "{\"prediction_type\":\"sample\"}",
					     "{\"prediction_type\":\"v_prediction\",\"timestep_spacing\":"
					     "\"trailing\",\"clip_sample\":false}"};
		double eta = var == 1 ? 0.7 : 0;
		cdm_sampler *s = mk_sampler(CDM_SAMPLER_DDIM, cfg[var], 50, eta);
		if (!s)
			continue;
		const float *ac = cdm_sampler_alphas_cumprod(s);
		int64_t t = var == 3 ? 499 : 500, prev = t - 20;
		double at = ac[t], ap = ac[prev], bt = 1 - at;
		double varc = (1 - ap) / bt * (1 - at / ap), sd = eta * sqrt(varc);
		for (int i = 0; i < N; i++) {
			double x0, e;
			if (var < 2) {
				x0 = (x[i] - sqrt(bt) * m[i]) / sqrt(at);
				e = m[i];
			} else if (var == 2) {
				x0 = m[i];
				e = (x[i] - sqrt(at) * x0) / sqrt(bt);
			} else {
				x0 = sqrt(at) * x[i] - sqrt(bt) * m[i];
				e = sqrt(at) * m[i] + sqrt(bt) * x[i];
			}
			if (var < 3)
				x0 = clampd(x0, 1);
			want[i] = sqrt(ap) * x0 + sqrt(1 - ap - sd * sd) * e + sd * z[i];
		}
		run_step(s, t, x, m, C, var == 1 ? z : NULL, NULL, want, "ddim", NULL);
		/* last step: prev < 0 -> final_alpha_cumprod 1 -> x_prev = x0 */
		if (var == 0) {
			for (int i = 0; i < N; i++)
				want[i] = clampd((x[i] - sqrt(1 - ac[0]) * m[i]) / sqrt(ac[0]), 1);
			run_step(s, 0, x, m, C, NULL, NULL, want, "ddim last step", NULL);
		}
		cdm_sampler_free(s);
	}
}

/* DPM-Solver++ quantities in float64 from alphas_cumprod. */
static void dpm_q(double ac, double *alpha, double *sigma, double *lambda)
{
	double sg = sqrt((1 - ac) / ac);
	*alpha = 1 / sqrt(sg * sg + 1);
	*sigma = sg * *alpha;
	*lambda = log(*alpha) - log(*sigma);
}

static void test_dpm(void)
{
	float x[N], m[N], m2[N], x0a[N];
	double want[N];
	rand_fill(x, N, -3, 3);
	rand_fill(m, N, -1.5, 1.5);
	rand_fill(m2, N, -1.5, 1.5);
	cdm_sampler *s = mk_sampler(CDM_SAMPLER_DPMPP, NULL, 20, 0);
	if (!s)
		return;
	const float *ac = cdm_sampler_alphas_cumprod(s);
	/* step 0 (t=999 -> 949), first order */
	double a0, s0, l0, a1, s1, l1, a2, s2, l2;
	dpm_q(ac[999], &a0, &s0, &l0);
	dpm_q(ac[949], &a1, &s1, &l1);
	double h = l1 - l0, x0v[N];
	for (int i = 0; i < N; i++) {
		x0v[i] = (x[i] - s0 * m[i]) / a0;
		want[i] = s1 / s0 * x[i] - a1 * (exp(-h) - 1) * x0v[i];
	}
	run_step(s, 999, x, m, C, NULL, NULL, want, "dpmpp step 0 (order 1)", x0a);
	double e0 = rel_err(x0a, x0v, N);
	CHECK(e0 < 1e-5, "dpmpp x0 history rel err %.3g", e0);
	/* step 1 (949 -> 899), second order with the history x0a */
	dpm_q(ac[899], &a2, &s2, &l2);
	double hh = l2 - l1, h0 = l1 - l0, r0 = h0 / hh;
	for (int i = 0; i < N; i++) {
		double xm = (x[i] - s1 * m2[i]) / a1;
		double d1 = (xm - x0a[i]) / r0;
		want[i] = s2 / s1 * x[i] - a2 * (exp(-hh) - 1) * xm - 0.5 * a2 * (exp(-hh) - 1) * d1;
	}
	run_step(s, 949, x, m2, C, NULL, x0a, want, "dpmpp step 1 (order 2)", NULL);
	/* missing history is a clean error */
	struct cdm_err err = {0};
	cdm_tensor *tx = mk(x, C), *tm = mk(m, C), *out = NULL;
	CHECK(cdm_sampler_step(s, nn, 1, tx, tm, NULL, NULL, &out, NULL, &err) == CDM_EINPUT &&
		      strstr(err.msg, "previous") && !out,
	      "dpmpp without history: %s", err.msg);
	/* last step (t=50 -> sigma 0): x_prev = x0 */
	double al, sl, ll;
	dpm_q(ac[50], &al, &sl, &ll);
	for (int i = 0; i < N; i++)
		want[i] = (x[i] - sl * m[i]) / al;
	run_step(s, 50, x, m, C, NULL, x0a, want, "dpmpp last step", NULL);
	cdm_nn_free(nn, tx);
	cdm_nn_free(nn, tm);
	cdm_sampler_free(s);
}

static void test_config(void)
{
	struct cdm_sched_config cfg;
	struct cdm_err err = {0};
	const char *j = "{\"variance_type\":\"fixed_large_log\"}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DDPM, j, strlen(j), "s.json", &err) ==
			  CDM_EINPUT && strstr(err.msg, "s.json") && strstr(err.msg, "fixed_large_log"),
	      "fixed_large_log refused: %s", err.msg);
	j = "{\"use_karras_sigmas\":true}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DPMPP, j, strlen(j), "s.json", &err) ==
			  CDM_EINPUT && strstr(err.msg, "use_karras_sigmas"),
	      "karras refused: %s", err.msg);
	j = "{\"beta_schedule\":\"laplace\"}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DDIM, j, strlen(j), "s.json", &err) ==
			  CDM_EINPUT && strstr(err.msg, "beta_schedule = 'laplace'"),
	      "laplace refused: %s", err.msg);
	j = "{\"beta_start\":\"x\"}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DDIM, j, strlen(j), "s.json", &err) ==
			  CDM_EINPUT && strstr(err.msg, "beta_start"),
	      "type error: %s", err.msg);
	j = "{\"_class_name\":\"DDPMScheduler\",\"variance_type\":\"fixed_large\","
	    "\"clip_sample\":true,\"something_new\":[1,2]}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DPMPP, j, strlen(j), "s.json", &err) == 0 &&
		      cfg.timestep_spacing == CDM_SPACING_LINSPACE && !cfg.clip_sample &&
		      cfg.variance_type == CDM_VAR_NONE,
	      "dpmpp from a DDPM config: %s", err.msg);
	cdm_sched_config_clear(&cfg);
	j = "{\"timestep_spacing\":\"leading\"}";
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DPMPP, j, strlen(j), "s.json", &err) == 0 &&
		      cfg.timestep_spacing == CDM_SPACING_LEADING,
	      "dpmpp explicit spacing");
	cdm_sched_config_clear(&cfg);
	CHECK(cdm_sched_config_parse(&cfg, CDM_SAMPLER_DDIM, "[1]", 3, "s.json", &err) == CDM_EINPUT,
	      "not an object");
	cdm_sampler *s = NULL;
	cdm_sched_config_default(&cfg, CDM_SAMPLER_DDIM);
	CHECK(cdm_sampler_new(&s, &cfg, CDM_SAMPLER_DDIM, 2000, 0, &err) == CDM_EINPUT && !s,
	      "too many steps: %s", err.msg);
	CHECK(cdm_sampler_new(&s, &cfg, CDM_SAMPLER_DDIM, 50, 0, &err) == 0, "ddim 50");
	int64_t k;
	CHECK(cdm_sampler_index(s, 999, &k, &err) == CDM_EINPUT && strstr(err.msg, "999"),
	      "unknown timestep: %s", err.msg);
	cdm_sampler_free(s);
	enum cdm_sampler_kind kind;
	CHECK(cdm_sampler_kind_parse("dpmpp", &kind) == 0 && kind == CDM_SAMPLER_DPMPP &&
		      cdm_sampler_kind_parse("euler", &kind) == CDM_EINPUT,
	      "kind names");
}

static void test_threshold(void)
{
	/* [1, 10]: 0, 0.5, ..., 4.5; quantile 0.5 -> rank 4.5 -> 2.25 */
	float v[10];
	for (int i = 0; i < 10; i++)
		v[i] = 0.5f * (float)i * (i % 2 ? -1.0f : 1.0f);
	struct cdm_err err;
	cdm_tensor *t = NULL, *o = NULL;
	int64_t d[2] = {1, 10};
	CHECK(cdm_nn_public(nn, 2, d, v, &t, &err) == 0, "tensor");
	CHECK(cdm_nn_threshold(nn, t, 0.5, 3.0, &o, &err) == 0, "threshold: %s", err.msg);
	if (o) {
		const float *r = cdm_nn_plain_data(o);
		double worst = 0;
		for (int i = 0; i < 10; i++)
			worst = fmax(worst, fabs(r[i] - clampd(v[i], 2.25) / 2.25));
		CHECK(worst < 1e-6, "threshold values off by %.3g", worst);
	}
	cdm_nn_free(nn, t);
	cdm_nn_free(nn, o);
}

/* End to end with an exact denoiser: data x0 ~ N(mu, s^2) elementwise has the
 * exact model eps(x_t) = (x_t - sqrt(a) E[x0|x_t]) / sqrt(1-a) with
 * E[x0|x_t] = mu + sqrt(a) s^2 (x_t - sqrt(a) mu) / (a s^2 + 1 - a).
 * A correct sampler run from x_T ~ N(0,1) must end with mean ~ mu and
 * std ~ s (this checks timesteps, prev_t rules, signs and the multistep
 * history together). */
static double gauss(void)
{
	double u1 = check_uniform(&rng, 1e-12, 1), u2 = check_uniform(&rng, 0, 1);
	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static void sample_gaussian(enum cdm_sampler_kind kind, int64_t steps, double eta, double sd,
			    const char *what)
{
	enum { NE = 64 * 64 };
	const double mu = 0.2;
	cdm_sampler *s = mk_sampler(kind, NULL, steps, eta);
	if (!s)
		return;
	const float *ac = cdm_sampler_alphas_cumprod(s);
	static float x[NE], e[NE], z[NE];
	for (int i = 0; i < NE; i++)
		x[i] = (float)gauss();
	struct cdm_err err = {0};
	int64_t d[4] = {1, 1, 64, 64};
	cdm_tensor *tx = NULL, *hist = NULL;
	int ok = cdm_nn_public(nn, 4, d, x, &tx, &err) == 0;
	for (int64_t k = 0; ok && k < steps; k++) {
		double a = ac[cdm_sampler_timesteps(s)[k]];
		const float *xv = cdm_nn_plain_data(tx);
		for (int i = 0; i < NE; i++) {
			double m = mu + sqrt(a) * sd * sd * (xv[i] - sqrt(a) * mu) / (a * sd * sd + 1 - a);
			e[i] = (float)((xv[i] - sqrt(a) * m) / sqrt(1 - a));
			z[i] = (float)gauss();
		}
		cdm_tensor *te = NULL, *tz = NULL, *nx = NULL, *x0 = NULL;
		ok = cdm_nn_public(nn, 4, d, e, &te, &err) == 0 &&
		     cdm_nn_public(nn, 4, d, z, &tz, &err) == 0 &&
		     cdm_sampler_step(s, nn, k, tx, te, tz, hist, &nx, &x0, &err) == 0;
		cdm_nn_free(nn, te);
		cdm_nn_free(nn, tz);
		cdm_nn_free(nn, tx);
		cdm_nn_free(nn, hist);
		tx = nx;
		hist = x0;
	}
	CHECK(ok, "%s: %s", what, err.msg);
	if (ok) {
		const float *xv = cdm_nn_plain_data(tx);
		double m1 = 0, m2 = 0, worst = 0;
		for (int i = 0; i < NE; i++) {
			m1 += xv[i], m2 += (double)xv[i] * xv[i];
			worst = fmax(worst, fabs(xv[i] - mu));
		}
		m1 /= NE;
		double std = sqrt(m2 / NE - m1 * m1);
		if (sd == 0) /* a point mass: x0 is exact at every step, so is the end */
			CHECK(worst < 1e-4, "%s: point mass: max |x - mu| = %.3g", what, worst);
		else
			CHECK(fabs(m1 - mu) < 0.02 && fabs(std / sd - 1) < 0.04,
			      "%s: final mean %.4f (want %.2f), std %.4f (want %.2f)", what, m1, mu,
			      std, sd);
	}
	cdm_nn_free(nn, tx);
	cdm_nn_free(nn, hist);
	cdm_sampler_free(s);
}

int main(void)
{
	rng = check_seed();
	struct cdm_err err;
	if (cdm_nn_plain_new(&nn, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_alphas();
	test_timesteps();
	test_ddpm();
	test_ddim();
	test_dpm();
	test_config();
	test_threshold();
	/* coarse schedules: a point mass must come out exactly */
	sample_gaussian(CDM_SAMPLER_DDIM, 50, 0, 0, "ddim 50, point mass");
	sample_gaussian(CDM_SAMPLER_DDIM, 50, 1, 0, "ddim 50 eta 1, point mass");
	sample_gaussian(CDM_SAMPLER_DPMPP, 20, 0, 0, "dpmpp 20, point mass");
	sample_gaussian(CDM_SAMPLER_DPMPP, 10, 0, 0, "dpmpp 10, point mass");
	sample_gaussian(CDM_SAMPLER_DDPM, 100, 0, 0, "ddpm 100, point mass");
	/* fine schedules: the distribution N(0.2, 0.3^2) (coarse ones shrink the
	 * spread: DPM++ 20 ends with the posterior mean at t=50, std 0.26) */
	sample_gaussian(CDM_SAMPLER_DDIM, 250, 0, 0.3, "ddim 250 on N(0.2, 0.3^2)");
	sample_gaussian(CDM_SAMPLER_DPMPP, 100, 0, 0.3, "dpmpp 100 on N(0.2, 0.3^2)");
	sample_gaussian(CDM_SAMPLER_DDPM, 1000, 0, 0.3, "ddpm 1000 on N(0.2, 0.3^2)");
	cdm_nn_plain_free(nn);
	return check_done();
}
