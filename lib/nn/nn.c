/* nn: shape checks and output allocation around the backend op table (see nn.h). */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t cdm_tensor_numel(const cdm_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= t->dim[i];
	return n;
}

const char *cdm_shape_str(char *buf, size_t size, int ndim, const int64_t *dim)
{
	size_t off = 0;
	if (!size)
		return buf;
	buf[0] = 0;
	off += (size_t)snprintf(buf + off, size - off, "[");
	for (int i = 0; i < ndim && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? "," : "",
					(long long)dim[i]);
	if (off < size)
		snprintf(buf + off, size - off, "]");
	return buf;
}

int cdm_tensor_same_shape(const cdm_tensor *a, const cdm_tensor *b)
{
	if (a->ndim != b->ndim)
		return 0;
	for (int i = 0; i < a->ndim; i++)
		if (a->dim[i] != b->dim[i])
			return 0;
	return 1;
}

/* "[2,3]" of a tensor, in one of a few rotating buffers so that one message
 * can show several shapes. */
static const char *shp(const cdm_tensor *t)
{
	static _Thread_local char bufs[4][64];
	static _Thread_local int k;
	char *b = bufs[k++ & 3];
	return t ? cdm_shape_str(b, 64, t->ndim, t->dim) : "(null)";
}

static int bad(struct cdm_err *err, const char *op, const char *why)
{
	return cdm_fail(err, CDM_EINPUT, "nn %s: %s", op, why);
}

/* Allocate the output, run the op, free the output on failure. */
#define RUN(nn, ndim, dim, out, err, call)                                       \
	do {                                                                     \
		cdm_tensor *o_ = NULL;                                           \
		CDM_TRY(cdm_nn_alloc((nn), (ndim), (dim), &o_, (err)));          \
		int rc_ = (call);                                                \
		if (rc_ < 0) {                                                   \
			(nn)->ops->free((nn)->ctx, o_);                          \
			return rc_;                                              \
		}                                                                \
		*(out) = o_;                                                     \
		return 0;                                                        \
	} while (0)
#define OUT o_

int cdm_nn_alloc(cdm_nn *nn, int ndim, const int64_t *dim, cdm_tensor **out,
		 struct cdm_err *err)
{
	*out = NULL;
	if (ndim < 1 || ndim > CDM_NN_MAX_DIMS)
		return cdm_fail(err, CDM_EINPUT, "nn: %d dimensions (1..%d supported)", ndim,
				CDM_NN_MAX_DIMS);
	int64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (dim[i] < 1 || dim[i] > ((int64_t)1 << 40) / n) {
			char b[96];
			return cdm_fail(err, CDM_EINPUT, "nn: bad tensor shape %s",
					cdm_shape_str(b, sizeof b, ndim, dim));
		}
		n *= dim[i];
	}
	return nn->ops->alloc(nn->ctx, ndim, dim, out, err);
}

void cdm_nn_free(cdm_nn *nn, cdm_tensor *t)
{
	if (t)
		nn->ops->free(nn->ctx, t);
}

int cdm_nn_public(cdm_nn *nn, int ndim, const int64_t *dim, const float *data,
		  cdm_tensor **out, struct cdm_err *err)
{
	RUN(nn, ndim, dim, out, err, nn->ops->set_public(nn->ctx, OUT, data, err));
}

int cdm_nn_load_weights(cdm_nn *nn, const char *path, struct cdm_err *err)
{
	if (!nn->ops->load_weights)
		return cdm_fail(err, CDM_EINPUT, "%s: the %s backend cannot load weight files",
				path, nn->ops->name);
	return nn->ops->load_weights(nn->ctx, path, err);
}

int cdm_nn_has_weight(cdm_nn *nn, const char *name)
{
	return nn->ops->has_weight(nn->ctx, name);
}

int cdm_nn_weight(cdm_nn *nn, const char *name, int ndim, const int64_t *dim,
		  cdm_tensor **out, struct cdm_err *err)
{
	*out = NULL;
	if (ndim < 1 || ndim > CDM_NN_MAX_DIMS)
		return cdm_fail(err, CDM_EINPUT, "weight '%s': %d dimensions", name, ndim);
	return nn->ops->weight(nn->ctx, name, ndim, dim, out, err);
}

int cdm_nn_read(cdm_nn *nn, const cdm_tensor *t, float *out, struct cdm_err *err)
{
	if (!nn->ops->read)
		return cdm_fail(err, CDM_EINPUT, "the %s backend cannot read tensors",
				nn->ops->name);
	return nn->ops->read(nn->ctx, t, out, err);
}

int cdm_nn_conv2d(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *w, const cdm_tensor *b,
		  int stride, const int pad[4], cdm_tensor **out, struct cdm_err *err)
{
	char why[200];
	if (x->ndim != 4 || w->ndim != 4 || x->dim[1] != w->dim[1] ||
	    (b && (b->ndim != 1 || b->dim[0] != w->dim[0]))) {
		snprintf(why, sizeof why, "x %s, weight %s, bias %s do not fit", shp(x), shp(w),
			 shp(b));
		return bad(err, "conv2d", why);
	}
	if (stride < 1 || pad[0] < 0 || pad[1] < 0 || pad[2] < 0 || pad[3] < 0)
		return bad(err, "conv2d", "bad stride or padding");
	int64_t hp = x->dim[2] + pad[0] + pad[2], wp = x->dim[3] + pad[1] + pad[3];
	if (hp < w->dim[2] || wp < w->dim[3]) {
		snprintf(why, sizeof why, "kernel %s larger than padded input %s", shp(w), shp(x));
		return bad(err, "conv2d", why);
	}
	int64_t d[4] = {x->dim[0], w->dim[0], (hp - w->dim[2]) / stride + 1,
			(wp - w->dim[3]) / stride + 1};
	RUN(nn, 4, d, out, err, nn->ops->conv2d(nn->ctx, OUT, x, w, b, stride, pad, err));
}

int cdm_nn_linear(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *w, const cdm_tensor *b,
		  cdm_tensor **out, struct cdm_err *err)
{
	if (x->ndim < 2 || x->ndim > 3 || w->ndim != 2 || x->dim[x->ndim - 1] != w->dim[1] ||
	    (b && (b->ndim != 1 || b->dim[0] != w->dim[0]))) {
		char why[200];
		snprintf(why, sizeof why, "x %s, weight %s, bias %s do not fit", shp(x), shp(w),
			 shp(b));
		return bad(err, "linear", why);
	}
	int64_t d[4];
	memcpy(d, x->dim, sizeof d);
	d[x->ndim - 1] = w->dim[0];
	RUN(nn, x->ndim, d, out, err, nn->ops->linear(nn->ctx, OUT, x, w, b, err));
}

static int check_affine(const cdm_tensor *g, const cdm_tensor *b, int64_t c, const char *op,
			struct cdm_err *err)
{
	if (g->ndim != 1 || b->ndim != 1 || g->dim[0] != c || b->dim[0] != c) {
		char why[200];
		snprintf(why, sizeof why, "weight %s / bias %s, expected [%lld]", shp(g), shp(b),
			 (long long)c);
		return bad(err, op, why);
	}
	return 0;
}

int cdm_nn_group_norm(cdm_nn *nn, const cdm_tensor *x, int groups, double eps,
		      const cdm_tensor *gamma, const cdm_tensor *beta, cdm_tensor **out,
		      struct cdm_err *err)
{
	if (x->ndim < 2 || groups < 1 || x->dim[1] % groups) {
		char why[200];
		snprintf(why, sizeof why, "%d groups do not divide the channels of %s", groups,
			 shp(x));
		return bad(err, "group_norm", why);
	}
	CDM_TRY(check_affine(gamma, beta, x->dim[1], "group_norm", err));
	if (!(eps > 0))
		return bad(err, "group_norm", "eps must be > 0");
	RUN(nn, x->ndim, x->dim, out, err,
	    nn->ops->group_norm(nn->ctx, OUT, x, groups, eps, gamma, beta, err));
}

int cdm_nn_layer_norm(cdm_nn *nn, const cdm_tensor *x, double eps, const cdm_tensor *gamma,
		      const cdm_tensor *beta, cdm_tensor **out, struct cdm_err *err)
{
	CDM_TRY(check_affine(gamma, beta, x->dim[x->ndim - 1], "layer_norm", err));
	if (!(eps > 0))
		return bad(err, "layer_norm", "eps must be > 0");
	RUN(nn, x->ndim, x->dim, out, err,
	    nn->ops->layer_norm(nn->ctx, OUT, x, eps, gamma, beta, err));
}

int cdm_nn_act(cdm_nn *nn, const cdm_tensor *x, enum cdm_act kind, cdm_tensor **out,
	       struct cdm_err *err)
{
	if ((int)kind < 0 || kind >= CDM_ACT_COUNT)
		return bad(err, "act", "unknown activation");
	RUN(nn, x->ndim, x->dim, out, err, nn->ops->act(nn->ctx, OUT, x, kind, err));
}

int cdm_nn_attention(cdm_nn *nn, const cdm_tensor *q, const cdm_tensor *k,
		     const cdm_tensor *v, int heads, double scale, cdm_tensor **out,
		     struct cdm_err *err)
{
	if (q->ndim != 3 || k->ndim != 3 || !cdm_tensor_same_shape(k, v) ||
	    q->dim[0] != k->dim[0] || q->dim[2] != k->dim[2] || heads < 1 ||
	    q->dim[2] % heads) {
		char why[200];
		snprintf(why, sizeof why, "q %s, k %s, v %s with %d heads do not fit", shp(q),
			 shp(k), shp(v), heads);
		return bad(err, "attention", why);
	}
	RUN(nn, 3, q->dim, out, err, nn->ops->attention(nn->ctx, OUT, q, k, v, heads, scale, err));
}

int cdm_nn_embed(cdm_nn *nn, const cdm_tensor *onehot, const cdm_tensor *table,
		 cdm_tensor **out, struct cdm_err *err)
{
	if (onehot->ndim != 2 || table->ndim != 2 || onehot->dim[1] != table->dim[0]) {
		char why[200];
		snprintf(why, sizeof why, "one-hot %s and table %s do not fit", shp(onehot),
			 shp(table));
		return bad(err, "embed", why);
	}
	int64_t d[2] = {onehot->dim[0], table->dim[1]};
	RUN(nn, 2, d, out, err, nn->ops->embed(nn->ctx, OUT, onehot, table, err));
}

/* An optional op the backend left NULL: one clear error instead of a crash. */
static int unsupported(cdm_nn *nn, const char *op, struct cdm_err *err)
{
	return cdm_fail(err, CDM_EINPUT, "the %s backend does not support op %s", nn->ops->name,
			op);
}

int cdm_nn_attention_causal(cdm_nn *nn, const cdm_tensor *q, const cdm_tensor *k,
			    const cdm_tensor *v, int heads, double scale, cdm_tensor **out,
			    struct cdm_err *err)
{
	*out = NULL;
	if (q->ndim != 3 || !cdm_tensor_same_shape(q, k) || !cdm_tensor_same_shape(k, v) ||
	    heads < 1 || q->dim[2] % heads) {
		char why[200];
		snprintf(why, sizeof why, "q %s, k %s, v %s with %d heads do not fit", shp(q),
			 shp(k), shp(v), heads);
		return bad(err, "attention_causal", why);
	}
	if (!nn->ops->attention_causal)
		return unsupported(nn, "attention_causal", err);
	RUN(nn, 3, q->dim, out, err,
	    nn->ops->attention_causal(nn->ctx, OUT, q, k, v, heads, scale, err));
}

int cdm_nn_reshape(cdm_nn *nn, const cdm_tensor *x, int ndim, const int64_t *dim,
		   cdm_tensor **out, struct cdm_err *err)
{
	*out = NULL;
	int64_t n = 1;
	for (int i = 0; i < ndim && ndim <= CDM_NN_MAX_DIMS; i++)
		n *= dim[i] > 0 ? dim[i] : 0;
	if (ndim < 1 || ndim > CDM_NN_MAX_DIMS || n != cdm_tensor_numel(x)) {
		char why[200], b[96];
		snprintf(why, sizeof why, "%s cannot be viewed as %s", shp(x),
			 ndim >= 1 && ndim <= CDM_NN_MAX_DIMS ? cdm_shape_str(b, sizeof b, ndim, dim)
							      : "a tensor of that rank");
		return bad(err, "reshape", why);
	}
	if (!nn->ops->reshape)
		return unsupported(nn, "reshape", err);
	RUN(nn, ndim, dim, out, err, nn->ops->reshape(nn->ctx, OUT, x, err));
}

int cdm_nn_lincomb(cdm_nn *nn, int n, const cdm_tensor *const *xs, const double *coef,
		   double c0, cdm_tensor **out, struct cdm_err *err)
{
	if (n < 1)
		return bad(err, "lincomb", "no operands");
	for (int i = 1; i < n; i++)
		if (!cdm_tensor_same_shape(xs[0], xs[i])) {
			char why[200];
			snprintf(why, sizeof why, "operand shapes %s and %s differ", shp(xs[0]),
				 shp(xs[i]));
			return bad(err, "lincomb", why);
		}
	RUN(nn, xs[0]->ndim, xs[0]->dim, out, err,
	    nn->ops->lincomb(nn->ctx, OUT, n, xs, coef, c0, err));
}

int cdm_nn_add(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err)
{
	return cdm_nn_axpby(nn, 1.0, a, 1.0, b, out, err);
}

int cdm_nn_sub(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err)
{
	return cdm_nn_axpby(nn, 1.0, a, -1.0, b, out, err);
}

int cdm_nn_scale(cdm_nn *nn, const cdm_tensor *x, double s, double c, cdm_tensor **out,
		 struct cdm_err *err)
{
	return cdm_nn_lincomb(nn, 1, &x, &s, c, out, err);
}

int cdm_nn_axpby(cdm_nn *nn, double a, const cdm_tensor *x, double b, const cdm_tensor *y,
		 cdm_tensor **out, struct cdm_err *err)
{
	const cdm_tensor *xs[2] = {x, y};
	double c[2] = {a, b};
	return cdm_nn_lincomb(nn, 2, xs, c, 0.0, out, err);
}

int cdm_nn_mul(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err)
{
	if (!cdm_tensor_same_shape(a, b)) {
		char why[200];
		snprintf(why, sizeof why, "shapes %s and %s differ", shp(a), shp(b));
		return bad(err, "mul", why);
	}
	RUN(nn, a->ndim, a->dim, out, err, nn->ops->mul(nn->ctx, OUT, a, b, err));
}

static int check_bcast(const cdm_tensor *x, const cdm_tensor *v, const char *op,
		       struct cdm_err *err)
{
	if (x->ndim < 2 || v->ndim != 2 || v->dim[0] != x->dim[0] || v->dim[1] != x->dim[1]) {
		char why[200];
		snprintf(why, sizeof why, "x %s and vector %s do not fit", shp(x), shp(v));
		return bad(err, op, why);
	}
	return 0;
}

int cdm_nn_bcast_add(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *v, cdm_tensor **out,
		     struct cdm_err *err)
{
	CDM_TRY(check_bcast(x, v, "bcast_add", err));
	RUN(nn, x->ndim, x->dim, out, err, nn->ops->bcast_add(nn->ctx, OUT, x, v, err));
}

int cdm_nn_bcast_mul(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *v, cdm_tensor **out,
		     struct cdm_err *err)
{
	CDM_TRY(check_bcast(x, v, "bcast_mul", err));
	RUN(nn, x->ndim, x->dim, out, err, nn->ops->bcast_mul(nn->ctx, OUT, x, v, err));
}

int cdm_nn_clamp(cdm_nn *nn, const cdm_tensor *x, double lo, double hi, cdm_tensor **out,
		 struct cdm_err *err)
{
	if (!(lo <= hi))
		return bad(err, "clamp", "lower bound above upper bound");
	RUN(nn, x->ndim, x->dim, out, err, nn->ops->clamp(nn->ctx, OUT, x, lo, hi, err));
}

int cdm_nn_threshold(cdm_nn *nn, const cdm_tensor *x, double ratio, double max,
		     cdm_tensor **out, struct cdm_err *err)
{
	if (!nn->ops->threshold)
		return cdm_fail(err, CDM_EINPUT,
				"thresholding is not supported by the %s backend", nn->ops->name);
	if (!(ratio >= 0 && ratio <= 1) || !(max >= 1))
		return bad(err, "threshold", "ratio must be in [0,1] and max >= 1");
	RUN(nn, x->ndim, x->dim, out, err, nn->ops->threshold(nn->ctx, OUT, x, ratio, max, err));
}

int cdm_nn_concat(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
		  struct cdm_err *err)
{
	int ok = a->ndim == b->ndim && a->ndim >= 2 && a->dim[0] == b->dim[0];
	for (int i = 2; ok && i < a->ndim; i++)
		ok = a->dim[i] == b->dim[i];
	if (!ok) {
		char why[200];
		snprintf(why, sizeof why, "shapes %s and %s do not fit", shp(a), shp(b));
		return bad(err, "concat", why);
	}
	int64_t d[4];
	memcpy(d, a->dim, sizeof d);
	d[1] += b->dim[1];
	RUN(nn, a->ndim, d, out, err, nn->ops->concat(nn->ctx, OUT, a, b, err));
}

int cdm_nn_slice(cdm_nn *nn, const cdm_tensor *x, int64_t start, int64_t len,
		 cdm_tensor **out, struct cdm_err *err)
{
	if (x->ndim < 2 || start < 0 || len < 1 || start + len > x->dim[1]) {
		char why[200];
		snprintf(why, sizeof why, "channels [%lld,%lld) outside %s", (long long)start,
			 (long long)(start + len), shp(x));
		return bad(err, "slice", why);
	}
	int64_t d[4];
	memcpy(d, x->dim, sizeof d);
	d[1] = len;
	RUN(nn, x->ndim, d, out, err, nn->ops->slice(nn->ctx, OUT, x, start, err));
}

static int check_image(const cdm_tensor *x, const char *op, int64_t min_hw,
		       struct cdm_err *err)
{
	if (x->ndim != 4 || x->dim[2] < min_hw || x->dim[3] < min_hw) {
		char why[200];
		snprintf(why, sizeof why, "input %s is not an image [B,C,H,W]%s", shp(x),
			 min_hw > 1 ? " of at least 2x2" : "");
		return bad(err, op, why);
	}
	return 0;
}

int cdm_nn_upsample2x(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err)
{
	CDM_TRY(check_image(x, "upsample2x", 1, err));
	int64_t d[4] = {x->dim[0], x->dim[1], 2 * x->dim[2], 2 * x->dim[3]};
	RUN(nn, 4, d, out, err, nn->ops->upsample2x(nn->ctx, OUT, x, err));
}

int cdm_nn_avgpool2x(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err)
{
	CDM_TRY(check_image(x, "avgpool2x", 2, err));
	int64_t d[4] = {x->dim[0], x->dim[1], x->dim[2] / 2, x->dim[3] / 2};
	RUN(nn, 4, d, out, err, nn->ops->avgpool2x(nn->ctx, OUT, x, err));
}

int cdm_nn_to_tokens(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err)
{
	CDM_TRY(check_image(x, "to_tokens", 1, err));
	int64_t d[3] = {x->dim[0], x->dim[2] * x->dim[3], x->dim[1]};
	RUN(nn, 3, d, out, err, nn->ops->to_tokens(nn->ctx, OUT, x, err));
}

int cdm_nn_from_tokens(cdm_nn *nn, const cdm_tensor *x, int64_t h, int64_t w,
		       cdm_tensor **out, struct cdm_err *err)
{
	if (x->ndim != 3 || h < 1 || w < 1 || x->dim[1] != h * w) {
		char why[200];
		snprintf(why, sizeof why, "tokens %s are not %lldx%lld", shp(x), (long long)h,
			 (long long)w);
		return bad(err, "from_tokens", why);
	}
	int64_t d[4] = {x->dim[0], x->dim[2], h, w};
	RUN(nn, 4, d, out, err, nn->ops->from_tokens(nn->ctx, OUT, x, err));
}

int cdm_nn_timestep_embedding(cdm_nn *nn, const double *t, int64_t batch, int64_t dim,
			      int flip_sin_to_cos, double freq_shift, cdm_tensor **out,
			      struct cdm_err *err)
{
	int64_t half = dim / 2;
	if (batch < 1 || dim < 2 || (double)half == freq_shift)
		return bad(err, "timestep_embedding", "bad batch, dimension or freq_shift");
	float *e = cdm_zalloc((size_t)(batch * dim), sizeof *e, err);
	if (!e)
		return CDM_ENOMEM;
	/* As torch: exponent = -ln(10000)*arange(half)/(half - shift) in float32,
	 * f = exp(exponent), arg = float(t)*f, then sin/cos in float32. */
	const float lnp = (float)log(10000.0);
	for (int64_t b = 0; b < batch; b++) {
		float tb = (float)t[b];
		float *row = e + b * dim;
		for (int64_t i = 0; i < half; i++) {
			float ex = -lnp * (float)i;
			ex = ex / (float)((double)half - freq_shift);
			float a = tb * expf(ex);
			float s = sinf(a), c = cosf(a);
			row[flip_sin_to_cos ? half + i : i] = s;
			row[flip_sin_to_cos ? i : half + i] = c;
		}
	}
	int64_t d[2] = {batch, dim};
	int rc = cdm_nn_public(nn, 2, d, e, out, err);
	cdm_free(e);
	return rc;
}

int cdm_nn_onehot(cdm_nn *nn, const int64_t *labels, int64_t batch, int64_t k,
		  cdm_tensor **out, struct cdm_err *err)
{
	for (int64_t b = 0; b < batch; b++)
		if (labels[b] < 0 || labels[b] >= k)
			return cdm_fail(err, CDM_EINPUT, "label %lld out of range 0..%lld",
					(long long)labels[b], (long long)(k - 1));
	float *e = cdm_zalloc((size_t)(batch * k), sizeof *e, err);
	if (!e)
		return CDM_ENOMEM;
	for (int64_t b = 0; b < batch; b++)
		e[b * k + labels[b]] = 1.0f;
	int64_t d[2] = {batch, k};
	int rc = cdm_nn_public(nn, 2, d, e, out, err);
	cdm_free(e);
	return rc;
}
