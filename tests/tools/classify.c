/*
 * tests/tools/classify: the independent digit classifier of
 * share/models/mnist-classifier, in C, so that tests can check that a
 * sampled image shows the requested digit without torch.
 *
 *   classify CLASSIFIER_DIR FILE...
 *
 * Each FILE holds tensor `x` [B,1,28,28] (a diffusion sample in [-1,1]) or
 * [B,1,32,32] (sd-digits: MNIST padded by 2; the centre 28x28 is used);
 * prints one predicted digit per image, one per line, in file order.
 * The network (see the classifier's README): conv3x3(1->16,pad 1) + ReLU +
 * maxpool 2, conv3x3(16->32,pad 1) + ReLU + maxpool 2, flatten (C,H,W),
 * linear 1568 -> 10, argmax; input pixels clamp(x/2+0.5, 0, 1).
 * A test tool, not a product: direct loops, float32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt/st.h"

struct digit_net {
	float *c1w, *c1b, *c2w, *c2b, *fcw, *fcb;
};

/* out[co][y][x] = relu(b[co] + sum w[co][ci][dy][dx] in[ci][y+dy-1][x+dx-1]),
 * zero padding, then 2x2 max pooling: out is [co][n/2][n/2]. */
static void conv_relu_pool(const float *in, int ci_n, int n, const float *w, const float *b,
			   int co_n, float *out)
{
	float *full = malloc(sizeof *full * (size_t)(n * n));
	for (int co = 0; co < co_n; co++) {
		for (int y = 0; y < n; y++)
			for (int x = 0; x < n; x++) {
				float s = b[co];
				for (int ci = 0; ci < ci_n; ci++)
					for (int dy = 0; dy < 3; dy++)
						for (int dx = 0; dx < 3; dx++) {
							int yy = y + dy - 1, xx = x + dx - 1;
							if (yy < 0 || yy >= n || xx < 0 || xx >= n)
								continue;
							s += w[((co * ci_n + ci) * 3 + dy) * 3 + dx] *
							     in[(ci * n + yy) * n + xx];
						}
				full[y * n + x] = s > 0 ? s : 0;
			}
		int h = n / 2;
		for (int y = 0; y < h; y++)
			for (int x = 0; x < h; x++) {
				const float *p = full + 2 * y * n + 2 * x;
				float m = p[0];
				if (p[1] > m) m = p[1];
				if (p[n] > m) m = p[n];
				if (p[n + 1] > m) m = p[n + 1];
				out[(co * h + y) * h + x] = m;
			}
	}
	free(full);
}

static int classify_one(const struct digit_net *net, const float *x)
{
	float img[28 * 28], h1[16 * 14 * 14], h2[32 * 7 * 7];
	for (int i = 0; i < 28 * 28; i++) {
		float v = x[i] / 2 + 0.5f;
		img[i] = v < 0 ? 0 : v > 1 ? 1 : v;
	}
	conv_relu_pool(img, 1, 28, net->c1w, net->c1b, 16, h1);
	conv_relu_pool(h1, 16, 14, net->c2w, net->c2b, 32, h2);
	int best = 0;
	float best_logit = 0;
	for (int k = 0; k < 10; k++) {
		float s = net->fcb[k];
		for (int i = 0; i < 32 * 7 * 7; i++)
			s += net->fcw[k * 32 * 7 * 7 + i] * h2[i];
		if (k == 0 || s > best_logit)
			best = k, best_logit = s;
	}
	return best;
}

static int load_net(struct digit_net *net, const char *dir, struct cdm_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	cdm_st *st = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	static const int64_t s_c1w[] = {16, 1, 3, 3}, s_c1b[] = {16}, s_c2w[] = {32, 16, 3, 3},
			     s_c2b[] = {32}, s_fcw[] = {10, 1568}, s_fcb[] = {10};
	int rc = cdm_st_load_f32(st, "conv1.weight", 4, s_c1w, &net->c1w, err);
	if (!rc) rc = cdm_st_load_f32(st, "conv1.bias", 1, s_c1b, &net->c1b, err);
	if (!rc) rc = cdm_st_load_f32(st, "conv2.weight", 4, s_c2w, &net->c2w, err);
	if (!rc) rc = cdm_st_load_f32(st, "conv2.bias", 1, s_c2b, &net->c2b, err);
	if (!rc) rc = cdm_st_load_f32(st, "fc.weight", 2, s_fcw, &net->fcw, err);
	if (!rc) rc = cdm_st_load_f32(st, "fc.bias", 1, s_fcb, &net->fcb, err);
	cdm_st_close(st);
	return rc;
}

static int classify_file(const struct digit_net *net, const char *path, struct cdm_err *err)
{
	cdm_st *st = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	const struct cdm_st_tensor *t = cdm_st_find(st, "x");
	int rc = 0;
	int64_t n = t && t->ndim == 4 ? t->shape[3] : 0;
	if (!t || t->shape[1] != 1 || t->shape[2] != n || (n != 28 && n != 32)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: no tensor `x` of shape [B,1,28,28] or [B,1,32,32]",
			      path);
	} else {
		float *x = cdm_alloc(t->numel, sizeof *x, err);
		rc = x ? cdm_st_to_f32(st, t, x, err) : CDM_ENOMEM;
		int64_t off = (n - 28) / 2;
		float crop[28 * 28];
		for (int64_t b = 0; rc == 0 && b < t->shape[0]; b++) {
			for (int y = 0; y < 28; y++)
				memcpy(crop + y * 28, x + (b * n + y + off) * n + off, 28 * sizeof *crop);
			printf("%d\n", classify_one(net, crop));
		}
		cdm_free(x);
	}
	cdm_st_close(st);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: classify CLASSIFIER_DIR FILE...\n");
		return 1;
	}
	struct cdm_err err = {0};
	struct digit_net net = {0};
	int rc = load_net(&net, argv[1], &err);
	for (int i = 2; rc == 0 && i < argc; i++)
		rc = classify_file(&net, argv[i], &err);
	cdm_free(net.c1w), cdm_free(net.c1b), cdm_free(net.c2w);
	cdm_free(net.c2b), cdm_free(net.fcw), cdm_free(net.fcb);
	if (rc) {
		fprintf(stderr, "classify: %s\n", err.msg);
		return 1;
	}
	return 0;
}
