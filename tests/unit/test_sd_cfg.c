/*
 * test_sd_cfg: classifier-free guidance of lib/model/sd_pipe.h on the plain
 * backend -- batch concatenation and slicing (exact copies), the context
 * expansion [uncond; cond] -> [uncond x B; cond x B], and
 * cdm_sd_guided_eps against two separate UNet calls combined in double
 * precision (eps_u + s (eps_c - eps_u)) on the u_fasttest golden UNet of
 * tests/golden_sd (or $CDM_GOLDEN_SD_DIR); s <= 1 must equal the cond call
 * exactly (diffusers does no guidance then).
 */
#include <string.h>

#include "check.h"
#include "model/sd_pipe.h"
#include "model/unet_cond.h"
#include "nn/nn.h"

static cdm_tensor *random_tensor(cdm_nn *nn, int ndim, const int64_t *dim, uint64_t *rs)
{
	struct cdm_err err = {0};
	int64_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= dim[i];
	float *d = malloc((size_t)n * sizeof *d);
	cdm_tensor *t = NULL;
	for (int64_t i = 0; d && i < n; i++)
		d[i] = (float)check_uniform(rs, -1, 1);
	if (!d || cdm_nn_public(nn, ndim, dim, d, &t, &err) < 0)
		fprintf(stderr, "random tensor: %s\n", err.msg);
	free(d);
	return t;
}

/* Rows [r0, r0+n) of a equal rows [s0, s0+n) of b, bit for bit. */
static int same_rows(const cdm_tensor *a, int64_t r0, const cdm_tensor *b, int64_t s0, int64_t n)
{
	int64_t row = cdm_tensor_numel(a) / a->dim[0];
	return !memcmp(cdm_nn_plain_data(a) + r0 * row, cdm_nn_plain_data(b) + s0 * row,
		       (size_t)(n * row) * sizeof(float));
}

static void layout(cdm_nn *nn, uint64_t *rs)
{
	struct cdm_err err = {0};
	int64_t da[4] = {1, 2, 3, 4}, db[4] = {2, 2, 3, 4}, dc[3] = {2, 5, 3};
	cdm_tensor *a = random_tensor(nn, 4, da, rs), *b = random_tensor(nn, 4, db, rs);
	cdm_tensor *c = random_tensor(nn, 3, dc, rs), *ab = NULL, *s = NULL, *e = NULL, *bad = NULL;
	CHECK(cdm_sd_batch_cat(nn, a, b, &ab, &err) == 0, "batch cat: %s", err.msg);
	if (ab) {
		CHECK(ab->ndim == 4 && ab->dim[0] == 3 && ab->dim[3] == 4, "cat shape");
		CHECK(same_rows(ab, 0, a, 0, 1) && same_rows(ab, 1, b, 0, 2), "cat values");
		CHECK(cdm_sd_batch_slice(nn, ab, 1, 2, &s, &err) == 0, "slice: %s", err.msg);
		CHECK(s && s->dim[0] == 2 && same_rows(s, 0, b, 0, 2), "slice values");
		CHECK(cdm_sd_batch_slice(nn, ab, 2, 2, &bad, &err) < 0 && strstr(err.msg, "[2,4) of 3"),
		      "slice out of range refused: '%s'", err.msg);
	}
	CHECK(cdm_sd_expand_ctx(nn, c, 3, &e, &err) == 0, "expand: %s", err.msg);
	if (e) {
		CHECK(e->dim[0] == 6 && e->dim[1] == 5 && e->dim[2] == 3, "expand shape");
		int ok = 1;
		for (int64_t r = 0; r < 3; r++)
			ok &= same_rows(e, r, c, 0, 1) && same_rows(e, 3 + r, c, 1, 1);
		CHECK(ok, "expand: rows are [u,u,u,c,c,c]");
	}
	cdm_tensor *e2 = NULL;
	CHECK(e && cdm_sd_expand_ctx(nn, e, 2, &e2, &err) < 0 &&
	      strstr(err.msg, "[2,L,D] or [4,L,D]"), "a [6,..] context for batch 2 refused: '%s'",
	      err.msg);
	cdm_nn_free(nn, e2);
	cdm_tensor *all[] = {a, b, c, ab, s, e, bad};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		cdm_nn_free(nn, all[i]);
}

static void guidance(cdm_nn *nn, const char *dir, uint64_t *rs)
{
	struct cdm_err err = {0};
	cdm_unet_cond *u = NULL;
	if (cdm_unet_cond_load(&u, nn, dir, NULL, &err) < 0) {
		CHECK(0, "%s: %s", dir, err.msg);
		return;
	}
	int64_t D = cdm_unet_cond_ctx_dim(u), B = 2;
	int64_t dx[4] = {B, 4, 16, 16}, dc[3] = {2, 7, D};
	double t[2] = {801, 321};
	cdm_tensor *x = random_tensor(nn, 4, dx, rs), *c2 = random_tensor(nn, 3, dc, rs);
	cdm_tensor *ctx = NULL, *cu = NULL, *cc = NULL, *eu = NULL, *ec = NULL, *eg = NULL, *e1 = NULL;
	int rc = cdm_sd_expand_ctx(nn, c2, B, &ctx, &err);
	if (rc == 0)
		rc = cdm_sd_batch_slice(nn, ctx, 0, B, &cu, &err);
	if (rc == 0)
		rc = cdm_sd_batch_slice(nn, ctx, B, B, &cc, &err);
	if (rc == 0)
		rc = cdm_unet_cond_forward(u, x, t, cu, &eu, &err);
	if (rc == 0)
		rc = cdm_unet_cond_forward(u, x, t, cc, &ec, &err);
	if (rc == 0)
		rc = cdm_sd_guided_eps(nn, u, x, t, ctx, 7.5, &eg, &err);
	if (rc == 0)
		rc = cdm_sd_guided_eps(nn, u, x, t, ctx, 1.0, &e1, &err);
	CHECK(rc == 0, "guidance run: %s", err.msg);
	if (rc == 0) {
		const float *pu = cdm_nn_plain_data(eu), *pc = cdm_nn_plain_data(ec);
		const float *pg = cdm_nn_plain_data(eg);
		double maxd = 0, maxv = 0;
		for (int64_t i = 0; i < cdm_tensor_numel(eg); i++) {
			double want = pu[i] + 7.5 * ((double)pc[i] - pu[i]);
			maxd = fmax(maxd, fabs(want - pg[i]));
			maxv = fmax(maxv, fabs(want));
		}
		fprintf(stderr, "guidance 7.5: max |eps| %.3f, max error %.3g\n", maxv, maxd);
		CHECK(maxv > 0.1 && maxd <= 1e-5 * maxv, "guided eps: error %.3g of %.3g", maxd, maxv);
		CHECK(cdm_tensor_same_shape(e1, ec) &&
		      !memcmp(cdm_nn_plain_data(e1), pc, (size_t)cdm_tensor_numel(ec) * 4),
		      "guidance 1: the cond eps exactly");
		double diff = 0;
		for (int64_t i = 0; i < cdm_tensor_numel(eg); i++)
			diff = fmax(diff, fabs((double)pu[i] - pc[i]));
		CHECK(diff > 1e-3, "the two contexts give different eps (%.3g)", diff);
	}
	cdm_tensor *all[] = {x, c2, ctx, cu, cc, eu, ec, eg, e1};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		cdm_nn_free(nn, all[i]);
	cdm_unet_cond_free(u);
}

int main(void)
{
	uint64_t rs = check_seed();
	struct cdm_err err = {0};
	cdm_nn *nn = NULL;
	const char *root = getenv("CDM_GOLDEN_SD_DIR");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/u_fasttest", root ? root : "tests/golden_sd");
	if (cdm_nn_plain_new(&nn, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	layout(nn, &rs);
	guidance(nn, dir, &rs);
	cdm_nn_plain_free(nn);
	return check_done();
}
