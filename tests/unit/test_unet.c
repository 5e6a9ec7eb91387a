/*
 * test_unet: the UNet2DModel forward against every golden case under
 * tests/golden/ (or $CDM_GOLDEN_DIR): a diffusers folder plus io.safetensors
 * with x, t, optional labels and the expected eps (computed in float64 by
 * the PyTorch implementation). Error measure: max relative error
 * ||out - eps||_inf / ||eps||_inf, required < 1e-5. Fails if no case exists.
 * Also: hostile inputs give clean errors (wrong shape, missing label).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fmt/st.h"
#include "model/unet.h"
#include "nn/nn.h"

/* Read an integer or float vector tensor of n elements as doubles. */
static int read_vec(const cdm_st *st, const char *name, int64_t n, double *out)
{
	const struct cdm_st_tensor *t = cdm_st_find(st, name);
	if (!t || (int64_t)t->numel != n)
		return -1;
	for (int64_t i = 0; i < n; i++) {
		if (t->dtype == CDM_I64) {
			int64_t v;
			memcpy(&v, t->data + 8 * i, 8);
			out[i] = (double)v;
		} else if (t->dtype == CDM_F32) {
			float v;
			memcpy(&v, t->data + 4 * i, 4);
			out[i] = v;
		} else if (t->dtype == CDM_I32) {
			int32_t v;
			memcpy(&v, t->data + 4 * i, 4);
			out[i] = v;
		} else {
			return -1;
		}
	}
	return 0;
}

static double run_case(const char *dir, const char *name)
{
	char path[4200];
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	cdm_st *io = NULL;
	cdm_tensor *x = NULL, *lab = NULL, *out = NULL;
	float *xv = NULL, *ev = NULL;
	double rel = 1e9;
	snprintf(path, sizeof path, "%s/io.safetensors", dir);
	if (cdm_nn_plain_new(&nn, &err) < 0 || cdm_unet_load(&u, nn, dir, NULL, &err) < 0 ||
	    cdm_st_open(&io, path, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	const struct cdm_st_tensor *xt = cdm_st_find(io, "x"), *et = cdm_st_find(io, "eps");
	if (!xt || !et || xt->ndim != 4 || et->ndim != 4) {
		fprintf(stderr, "%s: io.safetensors lacks x or eps\n", name);
		goto done;
	}
	int64_t B = xt->shape[0];
	double t[64];
	int64_t labels[64];
	double lv[64];
	if (B > 64 || read_vec(io, "t", B, t) < 0) {
		fprintf(stderr, "%s: bad t\n", name);
		goto done;
	}
	if (cdm_st_load_f32(io, "x", 4, xt->shape, &xv, &err) < 0 ||
	    cdm_st_load_f32(io, "eps", 4, et->shape, &ev, &err) < 0 ||
	    cdm_nn_public(nn, 4, xt->shape, xv, &x, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		goto done;
	}
	if (cdm_st_find(io, "labels")) {
		if (read_vec(io, "labels", B, lv) < 0) {
			fprintf(stderr, "%s: bad labels\n", name);
			goto done;
		}
		for (int64_t b = 0; b < B; b++)
			labels[b] = (int64_t)lv[b];
		if (cdm_nn_onehot(nn, labels, B, cdm_unet_config(u)->num_class_embeds, &lab, &err) < 0) {
			fprintf(stderr, "%s: %s\n", name, err.msg);
			goto done;
		}
	}
	double t0 = cdm_now();
	if (cdm_unet_forward(u, x, t, lab, &out, &err) < 0) {
		fprintf(stderr, "%s: forward: %s\n", name, err.msg);
		goto done;
	}
	double secs = cdm_now() - t0;
	const float *o = cdm_nn_plain_data(out);
	int64_t n = cdm_tensor_numel(out);
	if (n != (int64_t)et->numel) {
		fprintf(stderr, "%s: output has %lld elements, eps %lld\n", name, (long long)n,
			(long long)et->numel);
		goto done;
	}
	double maxd = 0, maxe = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)o[i] - ev[i]);
		maxd = d > maxd ? d : maxd;
		maxe = fabs(ev[i]) > maxe ? fabs(ev[i]) : maxe;
	}
	rel = maxd / (maxe > 0 ? maxe : 1);
	fprintf(stderr, "%-14s params %8lld  max rel err %.3g  (%.1f ms)\n", name,
		(long long)cdm_unet_params(u), rel, secs * 1e3);
done:
	cdm_free(xv);
	cdm_free(ev);
	if (nn) {
		cdm_nn_free(nn, x);
		cdm_nn_free(nn, lab);
		cdm_nn_free(nn, out);
	}
	cdm_unet_free(u);
	if (io)
		cdm_st_close(io);
	cdm_nn_plain_free(nn);
	return rel;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Bad inputs: a wrong channel count, an odd size, a missing label, a missing
 * folder -- each a clean error with a message. */
static void hostile(const char *root)
{
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/f_classes", root);
	CHECK(cdm_nn_plain_new(&nn, &err) == 0, "plain backend");
	CHECK(cdm_unet_load(&u, nn, "/nonexistent/model", NULL, &err) == CDM_EINPUT &&
		      strstr(err.msg, "/nonexistent/model"),
	      "missing folder: %s", err.msg);
	if (cdm_unet_load(&u, nn, dir, NULL, &err) < 0) {
		CHECK(0, "load %s: %s", dir, err.msg);
		cdm_nn_plain_free(nn);
		return;
	}
	const struct cdm_unet_config *c = cdm_unet_config(u);
	int64_t shp[4] = {1, c->in_channels + 1, c->sample_h, c->sample_w};
	CHECK(cdm_unet_check_input(u, 4, shp, &err) == CDM_EINPUT && strstr(err.msg, "x: shape"),
	      "channel mismatch: %s", err.msg);
	shp[1] = c->in_channels;
	shp[2] = c->sample_h + 1;
	CHECK(cdm_unet_check_input(u, 4, shp, &err) == CDM_EINPUT && strstr(err.msg, "halve"),
	      "odd size: %s", err.msg);
	shp[2] = c->sample_h;
	float *z = calloc((size_t)(shp[1] * shp[2] * shp[3]), sizeof *z);
	cdm_tensor *x = NULL, *out = NULL;
	double t = 10;
	CHECK(cdm_nn_public(nn, 4, shp, z, &x, &err) == 0, "input");
	CHECK(cdm_unet_forward(u, x, &t, NULL, &out, &err) == CDM_EINPUT &&
		      strstr(err.msg, "label") && !out,
	      "missing label: %s", err.msg);
	cdm_nn_free(nn, x);
	free(z);
	cdm_unet_free(u);
	cdm_nn_plain_free(nn);
}

int main(void)
{
	check_seed();
	const char *root = getenv("CDM_GOLDEN_DIR") ? getenv("CDM_GOLDEN_DIR") : "tests/golden";
	DIR *d = opendir(root);
	CHECK(d != NULL, "cannot open %s (run from the repository root)", root);
	if (!d)
		return check_done();
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		char p[8400];
		snprintf(p, sizeof p, "%s/%s/io.safetensors", root, e->d_name);
		if (e->d_name[0] != '.' && access(p, R_OK) == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof *names, cmp_str);
	CHECK(n > 0, "no golden case found under %s", root);
	for (int i = 0; i < n; i++) {
		char dir[4096];
		if (snprintf(dir, sizeof dir, "%s/%s", root, names[i]) >= (int)sizeof dir)
			continue;
		double rel = run_case(dir, names[i]);
		CHECK(rel < 1e-5, "%s: max relative error %.3g >= 1e-5", names[i], rel);
		free(names[i]);
	}
	if (n > 0)
		hostile(root);
	return check_done();
}
