/*
 * nn/plain: the float32 backend of the op table (see nn.h). Tensors hold
 * float[numel]; weights come from a safetensors file and are converted to
 * float32 once. Convolutions are im2col + cblas_sgemm (OpenBLAS); GroupNorm
 * and LayerNorm accumulate in double; softmax subtracts the row maximum;
 * GELU uses the exact erf; Mish follows torch (softplus threshold 20).
 * The wrappers in nn.c have already checked every shape.
 */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../fmt/st.h"

struct plain_ctx {
	cdm_st *weights; /* NULL until load_weights */
};

static float *D(const cdm_tensor *t)
{
	return (float *)t->data;
}

float *cdm_nn_plain_data(const cdm_tensor *t)
{
	return D(t);
}

static int p_alloc(void *ctx, int ndim, const int64_t *dim, cdm_tensor **out,
		   struct cdm_err *err)
{
	cdm_tensor *t = cdm_zalloc(1, sizeof *t, err);
	if (!t)
		return CDM_ENOMEM;
	t->ndim = ndim;
	for (int i = 0; i < CDM_NN_MAX_DIMS; i++)
		t->dim[i] = i < ndim ? dim[i] : 1;
	t->data = cdm_alloc((size_t)cdm_tensor_numel(t), sizeof(float), err);
	if (!t->data) {
		cdm_free(t);
		return CDM_ENOMEM;
	}
	*out = t;
	return 0;
}

static void p_free(void *ctx, cdm_tensor *t)
{
	if (!t)
		return;
	cdm_free(t->data);
	cdm_free(t);
}

static int p_set_public(void *ctx, cdm_tensor *out, const float *data, struct cdm_err *err)
{
	memcpy(out->data, data, (size_t)cdm_tensor_numel(out) * sizeof(float));
	return 0;
}

static int p_load_weights(void *vctx, const char *path, struct cdm_err *err)
{
	struct plain_ctx *ctx = vctx;
	cdm_st *st = NULL;
	CDM_TRY(cdm_st_open(&st, path, err));
	if (ctx->weights)
		cdm_st_close(ctx->weights);
	ctx->weights = st;
	return 0;
}

static int p_has_weight(void *vctx, const char *name)
{
	struct plain_ctx *ctx = vctx;
	return ctx->weights && cdm_st_find(ctx->weights, name) != NULL;
}

static int p_weight(void *vctx, const char *name, int ndim, const int64_t *dim,
		    cdm_tensor **out, struct cdm_err *err)
{
	struct plain_ctx *ctx = vctx;
	if (!ctx->weights)
		return cdm_fail(err, CDM_EINPUT, "weight '%s' requested but no weight file is loaded",
				name);
	float *data = NULL;
	CDM_TRY(cdm_st_load_f32(ctx->weights, name, ndim, dim, &data, err));
	/* a NaN or infinite weight would silently make every output NaN */
	int64_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= dim[i];
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(data[i])) {
			const char *what = isnan(data[i]) ? "NaN" : "infinite";
			cdm_free(data);
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%s': element %lld is %s",
					cdm_st_path(ctx->weights), name, (long long)i, what);
		}
	cdm_tensor *t = cdm_zalloc(1, sizeof *t, err);
	if (!t) {
		cdm_free(data);
		return CDM_ENOMEM;
	}
	t->ndim = ndim;
	for (int i = 0; i < CDM_NN_MAX_DIMS; i++)
		t->dim[i] = i < ndim ? dim[i] : 1;
	t->data = data;
	*out = t;
	return 0;
}

static int p_read(void *ctx, const cdm_tensor *t, float *out, struct cdm_err *err)
{
	memcpy(out, t->data, (size_t)cdm_tensor_numel(t) * sizeof(float));
	return 0;
}

/* ---- convolution ---------------------------------------------------------- */

/* col[(c*kh + i)*kw + j][oy*wo + ox] = padded x[c][oy*s + i - top][ox*s + j - left] */
static void im2col(const float *x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
		   int stride, const int pad[4], int64_t ho, int64_t wo, float *col)
{
	for (int64_t ci = 0; ci < c; ci++)
		for (int64_t i = 0; i < kh; i++)
			for (int64_t j = 0; j < kw; j++) {
				float *dst = col + ((ci * kh + i) * kw + j) * ho * wo;
				for (int64_t oy = 0; oy < ho; oy++) {
					int64_t y = oy * stride + i - pad[0];
					for (int64_t ox = 0; ox < wo; ox++) {
						int64_t xx = ox * stride + j - pad[1];
						dst[oy * wo + ox] = (y >= 0 && y < h && xx >= 0 && xx < w)
									    ? x[(ci * h + y) * w + xx]
									    : 0.0f;
					}
				}
			}
}

static int p_conv2d(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		    const cdm_tensor *b, int stride, const int pad[4], struct cdm_err *err)
{
	int64_t bn = x->dim[0], ci = x->dim[1], h = x->dim[2], wi = x->dim[3];
	int64_t co = w->dim[0], kh = w->dim[2], kw = w->dim[3];
	int64_t ho = out->dim[2], wo = out->dim[3], k = ci * kh * kw, hw = ho * wo;
	/* A 1x1 stride-1 unpadded conv needs no im2col: x is already [Ci, H*W]. */
	int direct = kh == 1 && kw == 1 && stride == 1 && !pad[0] && !pad[1] && !pad[2] && !pad[3];
	float *col = NULL;
	if (!direct && !(col = cdm_alloc((size_t)(k * hw), sizeof(float), err)))
		return CDM_ENOMEM;
	for (int64_t n = 0; n < bn; n++) {
		const float *xn = D(x) + n * ci * h * wi;
		float *on = D(out) + n * co * hw;
		if (!direct)
			im2col(xn, ci, h, wi, kh, kw, stride, pad, ho, wo, col);
		for (int64_t o = 0; o < co; o++) {
			float bias = b ? D(b)[o] : 0.0f;
			for (int64_t p = 0; p < hw; p++)
				on[o * hw + p] = bias;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)co, (int)hw, (int)k,
			    1.0f, D(w), (int)k, direct ? xn : col, (int)hw, 1.0f, on, (int)hw);
	}
	cdm_free(col);
	return 0;
}

static int p_linear(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		    const cdm_tensor *b, struct cdm_err *err)
{
	int64_t in = w->dim[1], o = w->dim[0], rows = cdm_tensor_numel(x) / in;
	float *y = D(out);
	for (int64_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < o; j++)
			y[r * o + j] = b ? D(b)[j] : 0.0f;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)o, (int)in, 1.0f,
		    D(x), (int)in, D(w), (int)in, 1.0f, y, (int)o);
	return 0;
}

/* ---- normalisation -------------------------------------------------------- */

/* Mean and 1/sqrt(biased variance + eps) of n values, in double (two passes,
 * so large means do not cancel the variance). */
static void norm_stats(const float *x, int64_t n, double eps, double *mean_out,
		       double *inv_out)
{
	double s = 0, ss = 0;
	for (int64_t i = 0; i < n; i++)
		s += x[i];
	double mean = s / (double)n;
	for (int64_t i = 0; i < n; i++) {
		double d = x[i] - mean;
		ss += d * d;
	}
	*mean_out = mean;
	*inv_out = 1.0 / sqrt(ss / (double)n + eps);
}

static int p_group_norm(void *ctx, cdm_tensor *out, const cdm_tensor *x, int groups,
			double eps, const cdm_tensor *gamma, const cdm_tensor *beta,
			struct cdm_err *err)
{
	int64_t bn = x->dim[0], c = x->dim[1], sp = cdm_tensor_numel(x) / (bn * c);
	int64_t cg = c / groups;
	for (int64_t n = 0; n < bn; n++)
		for (int64_t g = 0; g < groups; g++) {
			const float *xs = D(x) + (n * c + g * cg) * sp;
			float *ys = D(out) + (n * c + g * cg) * sp;
			double mean, inv;
			norm_stats(xs, cg * sp, eps, &mean, &inv);
			for (int64_t cc = 0; cc < cg; cc++) {
				double ga = D(gamma)[g * cg + cc], be = D(beta)[g * cg + cc];
				for (int64_t p = 0; p < sp; p++) {
					int64_t i = cc * sp + p;
					ys[i] = (float)((xs[i] - mean) * inv * ga + be);
				}
			}
		}
	return 0;
}

static int p_layer_norm(void *ctx, cdm_tensor *out, const cdm_tensor *x, double eps,
			const cdm_tensor *gamma, const cdm_tensor *beta, struct cdm_err *err)
{
	int64_t d = x->dim[x->ndim - 1], rows = cdm_tensor_numel(x) / d;
	for (int64_t r = 0; r < rows; r++) {
		const float *xs = D(x) + r * d;
		float *ys = D(out) + r * d;
		double mean, inv;
		norm_stats(xs, d, eps, &mean, &inv);
		for (int64_t i = 0; i < d; i++)
			ys[i] = (float)((xs[i] - mean) * inv * D(gamma)[i] + D(beta)[i]);
	}
	return 0;
}

/* ---- activations ---------------------------------------------------------- */

static double act1(double v, enum cdm_act kind)
{
	switch (kind) {
	case CDM_ACT_SILU:
		return v / (1.0 + exp(-v));
	case CDM_ACT_MISH: {
		/* torch softplus(beta=1, threshold=20): linear above 20. */
		double sp = v > 20.0 ? v : log1p(exp(v));
		return v * tanh(sp);
	}
	case CDM_ACT_GELU:
		return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
	case CDM_ACT_RELU:
		return v > 0 ? v : 0.0;
	case CDM_ACT_EXP:
		return exp(v);
	case CDM_ACT_SQRT:
		return v > 0 ? sqrt(v) : 0.0;
	case CDM_ACT_QUICK_GELU:
		return v / (1.0 + exp(-1.702 * v));
	default:
		return v;
	}
}

static int p_act(void *ctx, cdm_tensor *out, const cdm_tensor *x, enum cdm_act kind,
		 struct cdm_err *err)
{
	int64_t n = cdm_tensor_numel(x);
	for (int64_t i = 0; i < n; i++)
		D(out)[i] = (float)act1(D(x)[i], kind);
	return 0;
}

/* ---- attention ------------------------------------------------------------ */

/* Softmax of each row over its first `cols` (causal: row r over r+1 keys,
 * the rest set to 0, which is what a -inf mask gives). */
static void softmax_rows_ex(float *s, int64_t rows, int64_t cols, int causal)
{
	for (int64_t r = 0; r < rows; r++) {
		float *row = s + r * cols;
		int64_t n = causal ? r + 1 : cols;
		for (int64_t j = n; j < cols; j++)
			row[j] = 0.0f;
		float mx = row[0];
		for (int64_t j = 1; j < n; j++)
			mx = row[j] > mx ? row[j] : mx;
		double sum = 0;
		for (int64_t j = 0; j < n; j++) {
			double e = exp((double)row[j] - mx);
			row[j] = (float)e;
			sum += e;
		}
		float inv = (float)(1.0 / sum);
		for (int64_t j = 0; j < n; j++)
			row[j] *= inv;
	}
}

static int attention(cdm_tensor *out, const cdm_tensor *q, const cdm_tensor *k,
		     const cdm_tensor *v, int heads, double scale, int causal,
		     struct cdm_err *err)
{
	int64_t bn = q->dim[0], n = q->dim[1], m = k->dim[1], in = q->dim[2], dh = in / heads;
	float *s = cdm_alloc((size_t)(n * m), sizeof(float), err);
	if (!s)
		return CDM_ENOMEM;
	for (int64_t b = 0; b < bn; b++)
		for (int h = 0; h < heads; h++) {
			const float *qh = D(q) + b * n * in + h * dh;
			const float *kh = D(k) + b * m * in + h * dh;
			const float *vh = D(v) + b * m * in + h * dh;
			float *oh = D(out) + b * n * in + h * dh;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m, (int)dh,
				    (float)scale, qh, (int)in, kh, (int)in, 0.0f, s, (int)m);
			softmax_rows_ex(s, n, m, causal);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)dh, (int)m,
				    1.0f, s, (int)m, vh, (int)in, 0.0f, oh, (int)in);
		}
	cdm_free(s);
	return 0;
}

static int p_attention(void *ctx, cdm_tensor *out, const cdm_tensor *q, const cdm_tensor *k,
		       const cdm_tensor *v, int heads, double scale, struct cdm_err *err)
{
	return attention(out, q, k, v, heads, scale, 0, err);
}

static int p_attention_causal(void *ctx, cdm_tensor *out, const cdm_tensor *q,
			      const cdm_tensor *k, const cdm_tensor *v, int heads, double scale,
			      struct cdm_err *err)
{
	return attention(out, q, k, v, heads, scale, 1, err);
}

static int p_embed(void *ctx, cdm_tensor *out, const cdm_tensor *onehot,
		   const cdm_tensor *table, struct cdm_err *err)
{
	int64_t bn = onehot->dim[0], k = onehot->dim[1], d = table->dim[1];
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bn, (int)d, (int)k, 1.0f,
		    D(onehot), (int)k, D(table), (int)d, 0.0f, D(out), (int)d);
	return 0;
}

/* ---- elementwise ---------------------------------------------------------- */

static int p_lincomb(void *ctx, cdm_tensor *out, int n, const cdm_tensor *const *xs,
		     const double *coef, double c0, struct cdm_err *err)
{
	int64_t len = cdm_tensor_numel(out);
	/* out may not alias an input (the wrapper always allocates it fresh). */
	for (int64_t i = 0; i < len; i++) {
		double acc = c0;
		for (int j = 0; j < n; j++)
			acc += coef[j] * D(xs[j])[i];
		D(out)[i] = (float)acc;
	}
	return 0;
}

static int p_mul(void *ctx, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		 struct cdm_err *err)
{
	int64_t len = cdm_tensor_numel(out);
	for (int64_t i = 0; i < len; i++)
		D(out)[i] = D(a)[i] * D(b)[i];
	return 0;
}

static int bcast(cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v, int mul)
{
	int64_t bc = x->dim[0] * x->dim[1], sp = cdm_tensor_numel(x) / bc;
	for (int64_t r = 0; r < bc; r++) {
		float s = D(v)[r];
		const float *xs = D(x) + r * sp;
		float *ys = D(out) + r * sp;
		for (int64_t p = 0; p < sp; p++)
			ys[p] = mul ? xs[p] * s : xs[p] + s;
	}
	return 0;
}

static int p_bcast_add(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
		       struct cdm_err *err)
{
	return bcast(out, x, v, 0);
}

static int p_bcast_mul(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
		       struct cdm_err *err)
{
	return bcast(out, x, v, 1);
}

static int p_clamp(void *ctx, cdm_tensor *out, const cdm_tensor *x, double lo, double hi,
		   struct cdm_err *err)
{
	int64_t len = cdm_tensor_numel(out);
	float l = (float)lo, h = (float)hi;
	for (int64_t i = 0; i < len; i++) {
		float v = D(x)[i];
		D(out)[i] = v < l ? l : v > h ? h : v;
	}
	return 0;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* diffusers _threshold_sample: torch.quantile (linear interpolation between
 * the sorted neighbours of rank ratio*(n-1)), s clamped to [1, max]. */
static int p_threshold(void *ctx, cdm_tensor *out, const cdm_tensor *x, double ratio,
		       double max, struct cdm_err *err)
{
	int64_t bn = x->dim[0], n = cdm_tensor_numel(x) / bn;
	float *tmp = cdm_alloc((size_t)n, sizeof(float), err);
	if (!tmp)
		return CDM_ENOMEM;
	for (int64_t b = 0; b < bn; b++) {
		const float *xs = D(x) + b * n;
		float *ys = D(out) + b * n;
		for (int64_t i = 0; i < n; i++)
			tmp[i] = fabsf(xs[i]);
		qsort(tmp, (size_t)n, sizeof(float), cmp_float);
		double rank = ratio * (double)(n - 1);
		int64_t lo = (int64_t)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
		double s = tmp[lo] + (rank - (double)lo) * (tmp[hi] - tmp[lo]);
		s = s < 1.0 ? 1.0 : s > max ? max : s;
		float fs = (float)s;
		for (int64_t i = 0; i < n; i++) {
			float v = xs[i];
			v = v < -fs ? -fs : v > fs ? fs : v;
			ys[i] = v / fs;
		}
	}
	cdm_free(tmp);
	return 0;
}

/* ---- layout --------------------------------------------------------------- */

static int p_concat(void *ctx, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		    struct cdm_err *err)
{
	int64_t bn = a->dim[0];
	size_t na = (size_t)(cdm_tensor_numel(a) / bn), nb = (size_t)(cdm_tensor_numel(b) / bn);
	for (int64_t n = 0; n < bn; n++) {
		float *o = D(out) + (size_t)n * (na + nb);
		memcpy(o, D(a) + (size_t)n * na, na * sizeof(float));
		memcpy(o + na, D(b) + (size_t)n * nb, nb * sizeof(float));
	}
	return 0;
}

static int p_slice(void *ctx, cdm_tensor *out, const cdm_tensor *x, int64_t start,
		   struct cdm_err *err)
{
	int64_t bn = x->dim[0], c = x->dim[1], len = out->dim[1];
	int64_t sp = cdm_tensor_numel(x) / (bn * c);
	for (int64_t n = 0; n < bn; n++)
		memcpy(D(out) + n * len * sp, D(x) + (n * c + start) * sp,
		       (size_t)(len * sp) * sizeof(float));
	return 0;
}

static int p_upsample2x(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	int64_t planes = x->dim[0] * x->dim[1], h = x->dim[2], w = x->dim[3];
	for (int64_t p = 0; p < planes; p++) {
		const float *src = D(x) + p * h * w;
		float *dst = D(out) + p * 4 * h * w;
		for (int64_t y = 0; y < 2 * h; y++)
			for (int64_t xx = 0; xx < 2 * w; xx++)
				dst[y * 2 * w + xx] = src[(y / 2) * w + xx / 2];
	}
	return 0;
}

static int p_avgpool2x(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	int64_t planes = x->dim[0] * x->dim[1], h = x->dim[2], w = x->dim[3];
	int64_t ho = out->dim[2], wo = out->dim[3];
	for (int64_t p = 0; p < planes; p++) {
		const float *src = D(x) + p * h * w;
		float *dst = D(out) + p * ho * wo;
		for (int64_t y = 0; y < ho; y++)
			for (int64_t xx = 0; xx < wo; xx++) {
				const float *s = src + 2 * y * w + 2 * xx;
				dst[y * wo + xx] = (s[0] + s[1] + s[w] + s[w + 1]) * 0.25f;
			}
	}
	return 0;
}

static int p_to_tokens(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	int64_t bn = x->dim[0], c = x->dim[1], n = x->dim[2] * x->dim[3];
	for (int64_t b = 0; b < bn; b++)
		for (int64_t ci = 0; ci < c; ci++)
			for (int64_t t = 0; t < n; t++)
				D(out)[(b * n + t) * c + ci] = D(x)[(b * c + ci) * n + t];
	return 0;
}

static int p_from_tokens(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	int64_t bn = x->dim[0], n = x->dim[1], c = x->dim[2];
	for (int64_t b = 0; b < bn; b++)
		for (int64_t ci = 0; ci < c; ci++)
			for (int64_t t = 0; t < n; t++)
				D(out)[(b * c + ci) * n + t] = D(x)[(b * n + t) * c + ci];
	return 0;
}

static int p_reshape(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err)
{
	memcpy(D(out), D(x), (size_t)cdm_tensor_numel(x) * sizeof(float));
	return 0;
}

static const struct cdm_nn_ops plain_ops = {
	.name = "plain",
	.alloc = p_alloc,
	.free = p_free,
	.set_public = p_set_public,
	.load_weights = p_load_weights,
	.has_weight = p_has_weight,
	.weight = p_weight,
	.read = p_read,
	.conv2d = p_conv2d,
	.linear = p_linear,
	.group_norm = p_group_norm,
	.layer_norm = p_layer_norm,
	.act = p_act,
	.attention = p_attention,
	.embed = p_embed,
	.lincomb = p_lincomb,
	.mul = p_mul,
	.bcast_add = p_bcast_add,
	.bcast_mul = p_bcast_mul,
	.clamp = p_clamp,
	.threshold = p_threshold,
	.concat = p_concat,
	.slice = p_slice,
	.upsample2x = p_upsample2x,
	.avgpool2x = p_avgpool2x,
	.to_tokens = p_to_tokens,
	.from_tokens = p_from_tokens,
	.attention_causal = p_attention_causal,
	.reshape = p_reshape,
};

int cdm_nn_plain_new(cdm_nn **out, struct cdm_err *err)
{
	cdm_nn *nn = cdm_zalloc(1, sizeof *nn, err);
	if (!nn)
		return CDM_ENOMEM;
	nn->ctx = cdm_zalloc(1, sizeof(struct plain_ctx), err);
	if (!nn->ctx) {
		cdm_free(nn);
		return CDM_ENOMEM;
	}
	nn->ops = &plain_ops;
	*out = nn;
	return 0;
}

void cdm_nn_plain_free(cdm_nn *nn)
{
	if (!nn)
		return;
	struct plain_ctx *ctx = nn->ctx;
	if (ctx->weights)
		cdm_st_close(ctx->weights);
	cdm_free(ctx);
	cdm_free(nn);
}
