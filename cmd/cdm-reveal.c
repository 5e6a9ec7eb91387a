/*
 * cdm-reveal: the user's last step -- two or three output shares of one
 * sharing -> the image (PNG grid or safetensors `x`). Also turns a single
 * plaintext F32 tensor `x` into a PNG, and with --psnr compares the result
 * with a reference tensor (8-bit images, as cdm-unet-step's pipeline would
 * save them).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fmt/png.h"
#include "fmt/share.h"
#include "fmt/st.h"
#include "ring/ring.h"

#define PROG "cdm-reveal"
#define SYNOPSIS PROG " -o IMAGE.png|X.safetensors [--psnr REF] OUT.a OUT.b [OUT.c] | X.safetensors"

static const char help[] =
	"usage: " PROG " -o IMAGE.png|X.safetensors OUT.a OUT.b [OUT.c]\n"
	"       " PROG " -o IMAGE.png X.safetensors\n"
	"       " PROG " [-o OUT] [--psnr REF.safetensors] [--summary] INPUT...\n"
	"\n"
	"Reconstruct the sample from any two output shares of one run (cdm-party -o);\n"
	"with all three, the redundant components are cross-checked. A .png output is\n"
	"the 8-bit image (a grid for a batch); anything else gets a safetensors file with\n"
	"tensor `x` [B,C,H,W] (F32, model space). A single plaintext safetensors input\n"
	"(tensor `x`) is converted instead.\n"
	"\n"
	"  -o, --output FILE   where to write ('-': stdout, safetensors)\n"
	"      --psnr REF      print the PSNR in dB of the 8-bit images of the result and of\n"
	"                      REF's tensor `x` (same shape) on stdout\n"
	"      --summary       print the shape, min, max, mean and standard deviation of x\n"
	"  -q, --quiet         accepted for symmetry (only errors are printed)\n"
	"  -h, --help          this help\n";

static const struct option longopts[] = {
	{"help", no_argument, NULL, 'h'},
	{"output", required_argument, NULL, 'o'},
	{"psnr", required_argument, NULL, 'P'},
	{"quiet", no_argument, NULL, 'q'},
	{"summary", no_argument, NULL, 'S'},
	{NULL, 0, NULL, 0},
};

struct image {
	float *x;         /* [B*C*H*W] */
	int64_t shape[4];
};

/* Tensor `x` of a plaintext safetensors file (share files are refused). */
static int load_plain(const char *path, struct image *im, struct cdm_err *err)
{
	cdm_st *st = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	int rc = 0;
	const struct cdm_st_tensor *t = cdm_st_find(st, "x");
	const char *fmt = cdm_st_meta(st, "format");
	if (fmt && !strcmp(fmt, CDM_SHARE_FORMAT))
		rc = cdm_fail(err, CDM_EINPUT, "%s: one share reveals nothing: give two or three "
			      "output shares", path);
	else if (!t || t->ndim != 4)
		rc = cdm_fail(err, CDM_EINPUT, "%s: no tensor 'x' [B,C,H,W]", path);
	else
		rc = cdm_st_load_f32(st, "x", 4, t->shape, &im->x, err);
	if (rc == 0)
		memcpy(im->shape, t->shape, sizeof im->shape);
	cdm_st_close(st);
	return rc;
}

static int load_shares(char **paths, int n, struct image *im, struct cdm_err *err)
{
	cdm_share *sh[3] = {0};
	uint64_t *v = NULL;
	int rc = 0;
	for (int i = 0; rc == 0 && i < n; i++)
		rc = cdm_share_open(&sh[i], paths[i], "output", err);
	if (rc == 0)
		rc = cdm_share_check_set(sh, (size_t)n, err);
	const struct cdm_st_tensor *t = rc == 0 ? cdm_share_find(sh[0], "x") : NULL;
	if (rc == 0 && (!t || t->ndim != 4))
		rc = cdm_fail(err, CDM_EINPUT, "%s: no tensor 'x' [B,C,H,W]", paths[0]);
	if (rc == 0)
		rc = cdm_share_reconstruct(sh, (size_t)n, "x", &v, err);
	if (rc == 0 && !(im->x = cdm_alloc(t->numel, sizeof(float), err)))
		rc = CDM_ENOMEM;
	if (rc == 0) {
		cdm_fxp_decode_f32(im->x, v, t->numel, sh[0]->frac_bits);
		memcpy(im->shape, t->shape, sizeof im->shape);
	}
	cdm_free(v);
	for (int i = 0; i < n; i++)
		cdm_share_close(sh[i]);
	return rc;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcasecmp(s + a - b, suf);
}

static int save(const char *path, const struct image *im, struct cdm_err *err)
{
	if (has_suffix(path, ".png"))
		return cdm_png_save_tensor(path, im->x, im->shape[0], im->shape[1], im->shape[2],
					   im->shape[3], err);
	cdm_st_writer *w = NULL;
	CDM_TRY(cdm_st_writer_new(&w, err));
	int rc = cdm_st_writer_add(w, "x", CDM_F32, 4, im->shape, im->x, err);
	if (rc == 0)
		rc = cdm_st_writer_save(w, path, 0644, 0, err);
	cdm_st_writer_free(w);
	return rc;
}

/* PSNR of the 8-bit pixel images of a and of REF's `x`. */
static int psnr(const char *ref, const struct image *a, struct cdm_err *err)
{
	struct image b = {0};
	CDM_TRY(load_plain(ref, &b, err));
	int rc = 0;
	if (memcmp(a->shape, b.shape, sizeof b.shape) != 0)
		rc = cdm_fail(err, CDM_EINPUT, "%s: tensor 'x' is [%lld,%lld,%lld,%lld], the "
			      "revealed one [%lld,%lld,%lld,%lld]", ref, (long long)b.shape[0],
			      (long long)b.shape[1], (long long)b.shape[2], (long long)b.shape[3],
			      (long long)a->shape[0], (long long)a->shape[1],
			      (long long)a->shape[2], (long long)a->shape[3]);
	if (rc == 0) {
		size_t n = (size_t)(a->shape[0] * a->shape[1] * a->shape[2] * a->shape[3]);
		double se = 0;
		int maxd = 0;
		for (size_t k = 0; k < n; k++) {
			int d = (int)cdm_png_pixel(a->x[k]) - (int)cdm_png_pixel(b.x[k]);
			se += (double)d * d;
			maxd = abs(d) > maxd ? abs(d) : maxd;
		}
		double mse = se / (double)n;
		if (mse == 0)
			printf("psnr_db=inf max_pixel_diff=0\n");
		else
			printf("psnr_db=%.2f max_pixel_diff=%d\n", 10 * log10(255.0 * 255.0 / mse),
			       maxd);
	}
	cdm_free(b.x);
	return rc;
}

static void summary(const struct image *im)
{
	size_t n = (size_t)(im->shape[0] * im->shape[1] * im->shape[2] * im->shape[3]);
	double lo = INFINITY, hi = -INFINITY, s = 0, s2 = 0;
	for (size_t k = 0; k < n; k++) {
		double v = im->x[k];
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		s += v;
		s2 += v * v;
	}
	double mean = s / (double)n, var = s2 / (double)n - mean * mean;
	printf("shape=[%lld,%lld,%lld,%lld] min=%.6g max=%.6g mean=%.6g std=%.6g\n",
	       (long long)im->shape[0], (long long)im->shape[1], (long long)im->shape[2],
	       (long long)im->shape[3], lo, hi, mean, var > 0 ? sqrt(var) : 0.0);
}

int main(int argc, char **argv)
{
	const char *out = NULL, *ref = NULL;
	struct cdm_err err = {0};
	struct image im = {0};
	int c, want_summary = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "ho:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(help, stdout); return 0;
		case 'o': out = optarg; break;
		case 'P': ref = optarg; break;
		case 'q': break; /* only errors are printed anyway */
		case 'S': want_summary = 1; break;
		default:
			snprintf(err.msg, sizeof err.msg, "unknown or incomplete option '%s'",
				 argv[optind - 1]);
			return cdm_cli_usage_error(PROG, SYNOPSIS, err.msg);
		}
	}
	int n = argc - optind;
	if (!out && !ref && !want_summary)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "-o OUTPUT is required");
	if (n < 1 || n > 3)
		return cdm_cli_usage_error(PROG, SYNOPSIS, n < 1 ? "no input given"
								 : "at most three output shares");
	int rc = n == 1 ? load_plain(argv[optind], &im, &err)
			: load_shares(argv + optind, n, &im, &err);
	if (rc == 0 && out) {
		cdm_cli_block_signals(1);
		rc = save(out, &im, &err);
		cdm_cli_block_signals(0);
	}
	if (rc == 0 && want_summary)
		summary(&im);
	if (rc == 0 && ref)
		rc = psnr(ref, &im, &err);
	cdm_free(im.x);
	return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
}
