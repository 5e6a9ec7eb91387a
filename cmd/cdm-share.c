/*
 * cdm-share: split a diffusers model (model owner) or a user's input
 * (label, x_T) into three share files, PREFIX.0 PREFIX.1 PREFIX.2, one per
 * party. The work is lib/sample's; this file parses flags.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ring/ring.h"
#include "sample/sample.h"

#define PROG "cdm-share"
#define SYNOPSIS                                                                           \
	PROG " -o PREFIX MODEL_DIR | " PROG " -o PREFIX --input [--label N[,N...]] "       \
	     "[--batch B] [--seed S [--dump-noise FILE] | --noise X.safetensors] MODEL | "     \
	PROG " -o PREFIX --input --prompt TEXT [--negative-prompt TEXT] [...] SD_PIPELINE"

static const char help[] =
	"usage: " PROG " -o PREFIX [--frac-bits F] [--zstd L] MODEL_DIR\n"
	"       " PROG " -o PREFIX --input [--label N[,N...]] [--batch B]\n"
	"                 [--seed S [--dump-noise FILE] | --noise X.safetensors] MODEL\n"
	"       " PROG " -o PREFIX --input --prompt TEXT [--negative-prompt TEXT] [--batch B]\n"
	"                 [--seed S [--dump-noise FILE] | --noise X.safetensors] SD_PIPELINE\n"
	"\n"
	"Model owner: encode every weight of the diffusers folder MODEL_DIR in fixed point\n"
	"(a Stable Diffusion pipeline folder: unet/, the vae/ decoder and text_encoder/)\n"
	"and split it into three replicated shares, PREFIX.0 PREFIX.1 PREFIX.2 (send file i\n"
	"to party i). User (--input): share the class label(s) and, with --seed or --noise,\n"
	"the initial noise x_T; without either, the parties generate x_T jointly and\n"
	"nobody knows it. MODEL is the model folder or any model share file (only its\n"
	"public config is read). Files are written with mode 0600, all three or none.\n"
	"\n"
	"  -o, --output PREFIX   output prefix (required)\n"
	"      --input           share a user input instead of a model\n"
	"      --label N[,N...]  class label(s): one for the whole batch or one per sample\n"
	"      --batch B         samples per run (default: the number of labels, or 1)\n"
	"      --seed S          x_T = N(0,1) from AES-CTR keyed by the integer S\n"
	"      --dump-noise FILE with --seed: also write that x_T (tensor `x`, F32) so the\n"
	"                        plaintext reference can start from the same noise\n"
	"      --noise FILE      x_T from tensor `x` (or the only tensor) of FILE [B,C,H,W]\n"
	"      --prompt TEXT     Stable Diffusion: the prompt, tokenized here and shared as\n"
	"                        secret one-hot token ids (MODEL: the pipeline folder or\n"
	"                        its model share; x_T are the latents [B,4,h,w])\n"
	"      --negative-prompt TEXT  the unconditional prompt of guidance (default \"\")\n"
	"      --frac-bits F     fixed-point fraction bits (default 20; 8..24); the model\n"
	"                        and the input shares must use the same value\n"
	"      --zstd L          compress the share files with zstd level L (1..19)\n"
	"  -q, --quiet           accepted for symmetry (only errors are printed)\n"
	"  -h, --help            this help\n";

enum { O_INPUT = 256, O_LABEL, O_BATCH, O_SEED, O_DUMP, O_NOISE, O_FRAC, O_ZSTD, O_PROMPT,
       O_NEGATIVE };

static const struct option longopts[] = {
	{"batch", required_argument, NULL, O_BATCH},
	{"dump-noise", required_argument, NULL, O_DUMP},
	{"frac-bits", required_argument, NULL, O_FRAC},
	{"help", no_argument, NULL, 'h'},
	{"input", no_argument, NULL, O_INPUT},
	{"label", required_argument, NULL, O_LABEL},
	{"negative-prompt", required_argument, NULL, O_NEGATIVE},
	{"noise", required_argument, NULL, O_NOISE},
	{"output", required_argument, NULL, 'o'},
	{"prompt", required_argument, NULL, O_PROMPT},
	{"quiet", no_argument, NULL, 'q'},
	{"seed", required_argument, NULL, O_SEED},
	{"zstd", required_argument, NULL, O_ZSTD},
	{NULL, 0, NULL, 0},
};

struct opts {
	const char *prefix, *model;
	int input;
	int64_t labels[CDM_SAMPLE_MAX_BATCH];
	struct cdm_input_spec in;
	struct cdm_share_opts share;
};

static int parse(int argc, char **argv, struct opts *o, struct cdm_err *err)
{
	long long v;
	int c;
	while ((c = getopt_long(argc, argv, "ho:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(help, stdout); exit(0);
		case 'o': o->prefix = optarg; break;
		case 'q': break; /* nothing to silence: cdm-share prints only errors */
		case O_INPUT: o->input = 1; break;
		case O_LABEL:
			CDM_TRY(cdm_cli_int_list("--label", optarg, 0, 1 << 20, o->labels,
						 CDM_SAMPLE_MAX_BATCH, &o->in.nlabels, err));
			o->in.labels = o->labels;
			break;
		case O_BATCH:
			CDM_TRY(cdm_cli_int("--batch", optarg, 1, CDM_SAMPLE_MAX_BATCH, &v, err));
			o->in.batch = v;
			break;
		case O_SEED: {
			char *end = NULL;
			errno = 0;
			unsigned long long s = strtoull(optarg, &end, 0);
			if (!*optarg || *end || errno || optarg[0] == '-')
				return cdm_fail(err, CDM_EINPUT, "--seed: '%s' is not an unsigned "
						"64-bit integer", optarg);
			o->in.has_seed = 1;
			o->in.seed = s;
			break;
		}
		case O_DUMP: o->in.dump_noise = optarg; break;
		case O_NOISE: o->in.noise_path = optarg; break;
		case O_PROMPT: o->in.prompt = optarg; break;
		case O_NEGATIVE: o->in.negative_prompt = optarg; break;
		case O_FRAC:
			CDM_TRY(cdm_cli_int("--frac-bits", optarg, CDM_FRAC_BITS_MIN,
					    CDM_FRAC_BITS_MAX, &v, err));
			o->share.frac_bits = (int)v;
			break;
		case O_ZSTD:
			CDM_TRY(cdm_cli_int("--zstd", optarg, 1, 19, &v, err));
			o->share.zstd_level = (int)v;
			break;
		default: return cdm_fail(err, CDM_EINPUT, "unknown option");
		}
	}
	if (optind != argc - 1)
		return cdm_fail(err, CDM_EINPUT, optind >= argc ? "missing MODEL" : "one MODEL only");
	o->model = argv[optind];
	if (!o->prefix)
		return cdm_fail(err, CDM_EINPUT, "-o PREFIX is required");
	if (!o->input && (o->in.nlabels || o->in.batch || o->in.has_seed || o->in.noise_path ||
			  o->in.dump_noise || o->in.prompt || o->in.negative_prompt))
		return cdm_fail(err, CDM_EINPUT, "--label, --batch, --seed, --noise, "
				"--dump-noise and --prompt need --input");
	if (o->in.negative_prompt && !o->in.prompt)
		return cdm_fail(err, CDM_EINPUT, "--negative-prompt needs --prompt");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct cdm_err err = {0};
	memset(&o, 0, sizeof o);
	opterr = 0;
	if (parse(argc, argv, &o, &err) < 0) {
		if (!strcmp(err.msg, "unknown option"))
			snprintf(err.msg, sizeof err.msg, "unknown or incomplete option '%s'",
				 argv[optind - 1]);
		return cdm_cli_usage_error(PROG, SYNOPSIS, err.msg);
	}
	cdm_cli_block_signals(1); /* the renames of the three files go together */
	int rc = o.input ? cdm_sample_share_input(o.model, o.prefix, &o.in, &o.share, &err)
			 : cdm_sample_share_model(o.model, o.prefix, &o.share, &err);
	cdm_cli_block_signals(0);
	return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
}
