/*
 * cdm-unet-step: one plaintext float32 denoising step (x_t -> x_prev) of a
 * diffusers UNet2DModel, or with --context of a UNet2DConditionModel (Stable
 * Diffusion), or with --eps the raw model output. The reference the secure
 * run is compared against; chainable in a shell loop. DPM++ carries its
 * history (tensor `x0_prev`, metadata cdm.t) in the same file. The other SD
 * components run through --vae-decode, --text-encode and --tokenize.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fmt/st.h"
#include "model/sd_config.h"
#include "model/sd_pipe.h"
#include "model/unet.h"
#include "model/unet_cond.h"
#include "nn/nn.h"
#include "sched/sched.h"

#define PROG "cdm-unet-step"
#define SYNOPSIS                                                                        \
	PROG " -m MODEL_DIR -t T [--label N[,N...] | --context CTX [--guidance S]] "                   \
	     "[--sampler ddpm|ddim|dpmpp] [--steps N] [--eta E] [--noise Z.safetensors] " \
	     "[--eps] [-o OUT] [INPUT]"
#define MAXB 1024

static const char help[] =
	"usage: " SYNOPSIS "\n"
	"       " PROG " -m MODEL_DIR [--sampler S] [--steps N] --timesteps\n"
	"       " PROG " --vae-decode -m VAE_DIR [-o OUT] [INPUT]\n"
	"       " PROG " --text-encode -m TEXT_ENCODER_DIR [-o OUT] [INPUT]\n"
	"       " PROG " --tokenize -m TOKENIZER_DIR [-o OUT] PROMPT...\n"
	"\n"
	"One plaintext float32 denoising step of a diffusers UNet2DModel: reads tensor\n"
	"`x` [B,C,H,W] from INPUT (default stdin; other tensors are ignored) and writes\n"
	"`x` = x_prev (or `eps` with --eps) to OUT (default stdout), atomically.\n"
	"\n"
	"  -m, --model DIR     model folder (config.json + diffusion_pytorch_model.safetensors,\n"
	"                      optional scheduler_config.json) or pipeline folder\n"
	"  -t, --timestep T    the step's timestep (one of the sampler's; --timesteps lists\n"
	"                      them); with --eps also T0,T1,... one per batch element\n"
	"      --label N[,N]   class label(s): one per batch element or one for all\n"
	"      --context CTX   UNet2DConditionModel: tensor `ctx` [B,L,D] of CTX is\n"
	"                      encoder_hidden_states (e.g. from --text-encode)\n"
	"      --guidance S    classifier-free guidance: CTX holds [uncond; cond] (batch 2\n"
	"                      or 2B) for x [B,...]; eps = eps_u + S (eps_c - eps_u);\n"
	"                      S <= 1: the cond context alone (as diffusers)\n"
	"      --sampler S     ddpm, ddim (default) or dpmpp (DPM-Solver++ 2M)\n"
	"      --steps N       inference steps (default: ddpm all, ddim 50, dpmpp 20)\n"
	"      --eta E         DDIM eta (default 0; > 0 needs --noise)\n"
	"      --noise FILE    the step's noise z (tensor `z`, or the file's only tensor),\n"
	"                      required by DDPM steps with t > 0 and DDIM with eta > 0\n"
	"      --eps           write the model output `eps` instead of a step\n"
	"      --timesteps     print the sampler's timesteps, one per line, and exit\n"
	"      --vae-decode    AutoencoderKL.decode of tensor `z` (already divided by the\n"
	"                      scaling factor; or of sampler latents `x`, divided here)\n"
	"                      -> `x`, not clamped\n"
	"      --text-encode   CLIPTextModel last_hidden_state of int64 `ids` [B,L] -> `ctx`\n"
	"      --tokenize      CLIP BPE ids of each PROMPT -> int64 `ids` [P,77]\n"
	"                      (the -m folders may also be an SD pipeline folder)\n"
	"  -o, --output OUT    output file (default '-': stdout)\n"
	"  -q, --quiet         no progress output (there is none for one step)\n"
	"  -h, --help          this help\n"
	"\n"
	"DPM++ steps after the first need the previous step's output as input: it holds\n"
	"`x0_prev` besides `x`. Example:\n"
	"  for t in $(" PROG " -m M --sampler dpmpp --timesteps); do\n"
	"    " PROG " -m M --sampler dpmpp -t $t --label 3 < a.st > b.st && mv b.st a.st; done\n";

enum mode { MODE_STEP, MODE_VAE, MODE_TEXT, MODE_TOKENIZE };

struct opts {
	const char *model, *noise, *output, *input, *context;
	enum mode mode;
	char **prompts;
	int nprompts;
	int64_t t[MAXB], labels[MAXB];
	int nt, nlabels, eps_only, list, steps_set, guided;
	double guidance; /* --guidance S (with guided) */
	long long steps;
	double eta;
	enum cdm_sampler_kind kind;
};

/* Load tensor `name` of st as a new [B,C,H,W] plain tensor. */
static int load_image(cdm_nn *nn, cdm_st *st, const char *name, cdm_tensor **out,
		      struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_st_find(st, name);
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor '%s'", cdm_st_path(st), name);
	if (t->ndim != 4)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%s' has %d dimensions, expected "
				"[B,C,H,W]", cdm_st_path(st), name, t->ndim);
	float *data = NULL;
	CDM_TRY(cdm_st_load_f32(st, name, 4, t->shape, &data, err));
	/* a NaN or Inf would run through every layer and come out as a
	 * silently useless reference: refuse it as cdm-share --noise does */
	int rc = 0;
	for (uint64_t i = 0; rc == 0 && i < t->numel; i++)
		if (!isfinite(data[i]))
			rc = cdm_fail(err, CDM_EINPUT, "%s: tensor '%s': element %llu is %s",
				      cdm_st_path(st), name, (unsigned long long)i,
				      isnan(data[i]) ? "NaN" : "infinite");
	if (rc == 0)
		rc = cdm_nn_public(nn, 4, t->shape, data, out, err);
	cdm_free(data);
	return rc;
}

static int make_sampler(const struct opts *o, const char *sched_path, cdm_sampler **s,
			struct cdm_err *err)
{
	struct cdm_sched_config sc;
	CDM_TRY(cdm_sched_config_load(&sc, o->kind, sched_path, err));
	int64_t steps = o->steps_set ? o->steps
			: o->kind == CDM_SAMPLER_DDPM ? sc.num_train_timesteps
			: o->kind == CDM_SAMPLER_DDIM ? 50 : 20;
	int rc = cdm_sampler_new(s, &sc, o->kind, steps, o->eta, err);
	cdm_sched_config_clear(&sc);
	return rc;
}

static int list_timesteps(const struct opts *o, struct cdm_err *err)
{
	struct cdm_model_paths p;
	cdm_sampler *s = NULL;
	CDM_TRY(cdm_model_locate(&p, o->model, err));
	CDM_TRY(make_sampler(o, p.sched_config, &s, err));
	for (int64_t k = 0; k < cdm_sampler_steps(s); k++)
		printf("%lld\n", (long long)cdm_sampler_timesteps(s)[k]);
	cdm_sampler_free(s);
	return fflush(stdout) ? cdm_fail(err, CDM_EIO, "stdout: write error") : 0;
}

/* The DPM++ history from the input: required for second-order steps, and
 * must come from the previous timestep of the same schedule. */
static int load_history(cdm_nn *nn, cdm_st *in, const cdm_sampler *s, int64_t k,
			cdm_tensor **hist, struct cdm_err *err)
{
	const char *path = cdm_st_path(in);
	if (!cdm_st_find(in, "x0_prev"))
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor 'x0_prev': a DPM++ step after the "
				"first needs the previous step's output as input", path);
	const char *mt = cdm_st_meta(in, "cdm.t");
	long long want = cdm_sampler_timesteps(s)[k - 1];
	if (!mt || strtoll(mt, NULL, 10) != want)
		return cdm_fail(err, CDM_EINPUT, "%s: 'x0_prev' is from t=%s, expected t=%lld "
				"(the previous DPM++ step)", path, mt ? mt : "?", want);
	return load_image(nn, in, "x0_prev", hist, err);
}

static int write_out(cdm_nn *nn, const char *path, const char *name, const cdm_tensor *x,
		     const cdm_tensor *hist, const struct opts *o, struct cdm_err *err)
{
	cdm_st_writer *w = NULL;
	char tbuf[32];
	int rc;
	snprintf(tbuf, sizeof tbuf, "%lld", (long long)o->t[0]);
	if ((rc = cdm_st_writer_new(&w, err)) < 0)
		return rc;
	if ((rc = cdm_st_writer_add(w, name, CDM_F32, 4, x->dim, cdm_nn_plain_data(x), err)) < 0 ||
	    (hist && (rc = cdm_st_writer_add(w, "x0_prev", CDM_F32, 4, hist->dim,
					      cdm_nn_plain_data(hist), err)) < 0) ||
	    (rc = cdm_st_writer_meta(w, "cdm.t", tbuf, err)) < 0 ||
	    (!o->eps_only &&
	     (rc = cdm_st_writer_meta(w, "cdm.sampler", cdm_sampler_kind_name(o->kind), err)) < 0))
		goto done;
	cdm_cli_block_signals(1);
	rc = cdm_st_writer_save(w, path, 0644, 0, err);
	cdm_cli_block_signals(0);
done:
	cdm_st_writer_free(w);
	(void)nn;
	return rc;
}

/* A UNet2DModel, or with --context a UNet2DConditionModel; a mismatch
 * between the flag and the model's class is one clear error. */
static int load_unet(const struct opts *o, cdm_nn *nn, cdm_unet **u, cdm_unet_cond **uc,
		     struct cdm_model_paths *paths, struct cdm_err *err)
{
	char cls[128];
	CDM_TRY(cdm_sd_unet_class(o->model, cls, sizeof cls, err));
	int cond = !strcmp(cls, "UNet2DConditionModel");
	if (cond && !o->context)
		return cdm_fail(err, CDM_EINPUT, "%s: a UNet2DConditionModel: --context CTX "
				"(encoder_hidden_states) is required", o->model);
	if (!cond && o->context)
		return cdm_fail(err, CDM_EINPUT, "--context: %s is not a UNet2DConditionModel "
				"(_class_name '%s')", o->model, cls);
	if (cond && o->nlabels)
		return cdm_fail(err, CDM_EINPUT, "--label: %s is text-conditional (use --context)",
				o->model);
	return cond ? cdm_unet_cond_load(uc, nn, o->model, paths, err)
		    : cdm_unet_load(u, nn, o->model, paths, err);
}

/* --guidance: ctx [2,L,D] or [2B,L,D] = [uncond; cond] becomes [2B,L,D]. */
static int guide_ctx(const struct opts *o, cdm_nn *nn, const cdm_tensor *x, cdm_tensor **ctx,
		     struct cdm_err *err)
{
	cdm_tensor *c2 = NULL;
	int rc = cdm_sd_expand_ctx(nn, *ctx, x->dim[0], &c2, err);
	if (rc < 0) {
		cdm_err_prefix(err, "%s: ", o->context);
		return rc;
	}
	cdm_nn_free(nn, *ctx);
	*ctx = c2;
	return 0;
}

/* --vae-decode, --text-encode, --tokenize: one library call, then an
 * atomic save with signals held. */
static int run_component(const struct opts *o, struct cdm_err *err)
{
	cdm_st *in = NULL;
	cdm_st_writer *w = NULL;
	int rc = 0;
	if (o->mode == MODE_TOKENIZE)
		rc = cdm_sd_tokenize_st(o->model, (const char *const *)o->prompts, o->nprompts, &w, err);
	else if ((rc = cdm_st_open(&in, o->input, err)) == 0)
		rc = o->mode == MODE_VAE ? cdm_sd_vae_decode_st(o->model, in, &w, err)
					 : cdm_sd_text_encode_st(o->model, in, &w, err);
	if (rc == 0) {
		cdm_cli_block_signals(1);
		rc = cdm_st_writer_save(w, o->output, 0644, 0, err);
		cdm_cli_block_signals(0);
	}
	cdm_st_writer_free(w);
	if (in)
		cdm_st_close(in);
	return rc;
}

static int run(const struct opts *o, struct cdm_err *err)
{
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	cdm_unet_cond *uc = NULL;
	cdm_st *in = NULL, *zf = NULL;
	cdm_sampler *s = NULL;
	cdm_tensor *x = NULL, *lab = NULL, *eps = NULL, *z = NULL, *hist = NULL, *xp = NULL,
		   *x0 = NULL, *ctx = NULL;
	struct cdm_model_paths paths;
	double t[MAXB];
	int64_t labels[MAXB];
	int rc;
	if ((rc = cdm_nn_plain_new(&nn, err)) < 0 || (rc = load_unet(o, nn, &u, &uc, &paths, err)) < 0 ||
	    (o->context && (rc = cdm_sd_load_ctx(nn, o->context, &ctx, err)) < 0) ||
	    (rc = cdm_st_open(&in, o->input, err)) < 0 || (rc = load_image(nn, in, "x", &x, err)) < 0)
		goto done;
	static const struct cdm_unet_config no_classes;
	const struct cdm_unet_config *c = u ? cdm_unet_config(u) : &no_classes;
	int64_t B = x->dim[0];
	if ((rc = u ? cdm_unet_check_input(u, 4, x->dim, err)
		    : cdm_unet_cond_check_input(uc, 4, x->dim, 0, NULL, err)) < 0) {
		cdm_err_prefix(err, "%s: ", cdm_st_path(in));
		goto done;
	}
	if (uc && o->guided && (rc = guide_ctx(o, nn, x, &ctx, err)) < 0)
		goto done;
	int64_t xd[4] = {x->dim[0] * (o->guided ? 2 : 1), x->dim[1], x->dim[2], x->dim[3]};
	if (uc && (rc = cdm_unet_cond_check_input(uc, 4, xd, ctx->ndim, ctx->dim, err)) < 0) {
		cdm_err_prefix(err, "%s: ", o->context);
		goto done;
	}
	if (B > MAXB || (o->nt != 1 && o->nt != B) || (o->nlabels > 1 && o->nlabels != B)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: batch of %lld: give one value for all or one "
			      "per element (-t: %d, --label: %d)", cdm_st_path(in), (long long)B,
			      o->nt, o->nlabels);
		goto done;
	}
	for (int64_t b = 0; b < B; b++) {
		t[b] = (double)o->t[o->nt == 1 ? 0 : b];
		labels[b] = o->labels[o->nlabels == 1 ? 0 : b];
	}
	if (c->num_class_embeds && !o->nlabels) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: the model is class-conditional: --label is "
			      "required (0..%lld)", o->model, (long long)(c->num_class_embeds - 1));
		goto done;
	}
	if (!c->num_class_embeds && o->nlabels) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: the model is unconditional: no --label", o->model);
		goto done;
	}
	if (o->nlabels && (rc = cdm_nn_onehot(nn, labels, B, c->num_class_embeds, &lab, err)) < 0) {
		cdm_err_prefix(err, "--label: ");
		goto done;
	}
	int64_t k = 0;
	struct cdm_step_coefs co = {0};
	if (!o->eps_only) {
		if ((rc = make_sampler(o, paths.sched_config, &s, err)) < 0 ||
		    (rc = cdm_sampler_index(s, o->t[0], &k, err)) < 0 ||
		    (rc = cdm_sampler_coefs(s, k, &co, err)) < 0)
			goto done;
		if (co.needs_noise) {
			if (!o->noise) {
				rc = cdm_fail(err, CDM_EINPUT, "--noise is required: this %s step "
					      "(t=%lld) adds noise", cdm_sampler_kind_name(o->kind),
					      (long long)o->t[0]);
				goto done;
			}
			if ((rc = cdm_st_open(&zf, o->noise, err)) < 0)
				goto done;
			const char *zn = cdm_st_find(zf, "z") ? "z" : cdm_st_find(zf, "noise") ? "noise"
					 : cdm_st_count(zf) == 1 ? cdm_st_at(zf, 0)->name : "z";
			if ((rc = load_image(nn, zf, zn, &z, err)) < 0)
				goto done;
			if (!cdm_tensor_same_shape(z, x)) {
				char a[64], b[64];
				rc = cdm_fail(err, CDM_EINPUT, "%s: noise shape %s, sample shape %s",
					      o->noise, cdm_shape_str(a, sizeof a, 4, z->dim),
					      cdm_shape_str(b, sizeof b, 4, x->dim));
				goto done;
			}
		}
		if (co.order == 2 && (rc = load_history(nn, in, s, k, &hist, err)) < 0)
			goto done;
	}
	if ((rc = u ? cdm_unet_forward(u, x, t, lab, &eps, err)
		: o->guided ? cdm_sd_guided_eps(nn, uc, x, t, ctx, o->guidance, &eps, err)
			    : cdm_unet_cond_forward(uc, x, t, ctx, &eps, err)) < 0)
		goto done;
	if (o->eps_only) {
		rc = write_out(nn, o->output, "eps", eps, NULL, o, err);
		goto done;
	}
	if ((rc = cdm_sampler_step(s, nn, k, x, eps, z, hist, &xp, &x0, err)) < 0)
		goto done;
	rc = write_out(nn, o->output, "x", xp, o->kind == CDM_SAMPLER_DPMPP ? x0 : NULL, o, err);
done:
	if (nn) {
		cdm_tensor *all[] = {x, lab, eps, z, hist, xp, x0, ctx};
		for (size_t i = 0; i < sizeof all / sizeof *all; i++)
			cdm_nn_free(nn, all[i]);
	}
	cdm_sampler_free(s);
	cdm_unet_free(u);
	cdm_unet_cond_free(uc);
	if (in)
		cdm_st_close(in);
	if (zf)
		cdm_st_close(zf);
	cdm_nn_plain_free(nn);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"context", required_argument, 0, 'c'},
		{"eps", no_argument, 0, 'E'},      {"eta", required_argument, 0, 'e'},
		{"guidance", required_argument, 0, 'G'},
		{"help", no_argument, 0, 'h'},     {"label", required_argument, 0, 'l'},
		{"model", required_argument, 0, 'm'}, {"noise", required_argument, 0, 'z'},
		{"output", required_argument, 0, 'o'}, {"quiet", no_argument, 0, 'q'},
		{"sampler", required_argument, 0, 'S'}, {"steps", required_argument, 0, 'n'},
		{"text-encode", no_argument, 0, 'X'},
		{"timestep", required_argument, 0, 't'}, {"timesteps", no_argument, 0, 'T'},
		{"tokenize", no_argument, 0, 'K'}, {"vae-decode", no_argument, 0, 'V'},
		{0, 0, 0, 0}};
	struct opts o = {.output = "-", .input = "-", .kind = CDM_SAMPLER_DDIM};
	struct cdm_err err = {0};
	int ch, eta_set = 0, nmodes = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":hm:o:qt:", lo, NULL)) != -1) {
		int rc = 0;
		switch (ch) {
		case 'c': o.context = optarg; break;
		case 'E': o.eps_only = 1; break;
		case 'e': rc = cdm_cli_double("--eta", optarg, 0, 1000, &o.eta, &err), eta_set = 1; break;
		case 'G': rc = cdm_cli_double("--guidance", optarg, -1000, 1000, &o.guidance, &err), o.guided = 1; break;
		case 'h': fputs(help, stdout); return 0;
		case 'l':
			rc = cdm_cli_int_list("--label", optarg, 0, 1 << 30, o.labels, MAXB, &o.nlabels, &err);
			break;
		case 'm': o.model = optarg; break;
		case 'n': rc = cdm_cli_int("--steps", optarg, 1, 100000, &o.steps, &err), o.steps_set = 1; break;
		case 'o': o.output = optarg; break;
		case 'q': break;
		case 'S':
			if (cdm_sampler_kind_parse(optarg, &o.kind) < 0)
				rc = cdm_fail(&err, CDM_EINPUT, "--sampler: '%s' is not ddpm, ddim or dpmpp", optarg);
			break;
		case 't': rc = cdm_cli_int_list("-t", optarg, 0, 1 << 30, o.t, MAXB, &o.nt, &err); break;
		case 'T': o.list = 1; break;
		case 'K': nmodes++, o.mode = MODE_TOKENIZE; break;
		case 'V': nmodes++, o.mode = MODE_VAE; break;
		case 'X': nmodes++, o.mode = MODE_TEXT; break;
		case 'z': o.noise = optarg; break;
		case ':': {
			char m[96];
			snprintf(m, sizeof m, "option '%s' needs a value", argv[optind - 1]);
			return cdm_cli_usage_error(PROG, SYNOPSIS, m);
		}
		default: {
			char m[96];
			snprintf(m, sizeof m, "unknown option '%s'", argv[optind - 1]);
			return cdm_cli_usage_error(PROG, SYNOPSIS, m);
		}
		}
		if (rc < 0)
			return cdm_cli_usage_error(PROG, SYNOPSIS, err.msg);
	}
	if (!o.model)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "-m MODEL_DIR is required");
	if (nmodes > 1)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "--vae-decode, --text-encode and "
					   "--tokenize exclude each other");
	if (o.mode == MODE_TOKENIZE) {
		o.prompts = argv + optind;
		o.nprompts = argc - optind;
		if (!o.nprompts)
			return cdm_cli_usage_error(PROG, SYNOPSIS, "--tokenize needs a PROMPT");
		int rc = run_component(&o, &err);
		return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
	}
	if (optind < argc)
		o.input = argv[optind++];
	if (optind < argc)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "more than one INPUT");
	if (o.mode != MODE_STEP) {
		if (o.nt || o.context || o.nlabels || o.list || o.noise || o.eps_only || o.guided)
			return cdm_cli_usage_error(PROG, SYNOPSIS, "--vae-decode and --text-encode "
						   "take only -m, -o and INPUT");
		int rc = run_component(&o, &err);
		return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
	}
	if (o.guided && !o.context && !o.list)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "--guidance needs --context CTX");
	if (eta_set && o.kind != CDM_SAMPLER_DDIM && o.eta != 0)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "--eta applies to --sampler ddim only");
	int rc;
	if (o.list) {
		rc = list_timesteps(&o, &err);
	} else {
		if (!o.nt)
			return cdm_cli_usage_error(PROG, SYNOPSIS, "-t T is required");
		if (o.nt > 1 && !o.eps_only)
			return cdm_cli_usage_error(PROG, SYNOPSIS,
						   "several timesteps need --eps (a step has one t)");
		rc = run(&o, &err);
	}
	return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
}
