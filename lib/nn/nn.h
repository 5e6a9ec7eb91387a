/*
 * nn: tensors and the neural-network op table (a backend interface, as ggml
 * backends do). The UNet forward pass and the sampler step are written once
 * against this table; a backend supplies the arithmetic: float32 in plain.c,
 * replicated secret shares in the secure backend.
 *
 * Owns: struct cdm_tensor (a backend handle with a public shape), struct
 * cdm_nn_ops, cdm_nn (ops + backend context), and the cdm_nn_* wrappers.
 * Does not own: what the tensors mean (lib/model, lib/sched), where weights
 * come from (the backend binds them by name), file formats.
 *
 * Division of labour. Callers use the cdm_nn_* wrappers, never ops->* directly.
 * A wrapper checks every shape rule stated below (one CDM_EINPUT message
 * naming the op and the shapes), computes the output shape, allocates the
 * output with ops->alloc, and calls the op; on failure it frees the output.
 * So a backend op may trust that its arguments have the documented shapes
 * and that `out` already has the output shape; it only fills out->data.
 *
 * Ops are coarse and whole-tensor on purpose: a secure backend can then run
 * every nonlinear element of one call in the same few rounds.
 *
 * Invariants: 1 <= ndim <= CDM_NN_MAX_DIMS, every dim >= 1, row-major.
 * Images are NCHW [B,C,H,W]; tokens are [B,N,C]; vectors per batch [B,C].
 * Scalars (coefficients, eps, clamp bounds, scale) are PUBLIC doubles.
 *
 * Thread-safety: a cdm_nn and its tensors belong to one thread.
 */
#ifndef CDM_NN_H
#define CDM_NN_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_NN_MAX_DIMS 4

/* A tensor: public shape, backend-owned data. Created only by backend ops
 * (through the wrappers) and released with cdm_nn_free. */
typedef struct cdm_tensor {
	int ndim;
	int64_t dim[CDM_NN_MAX_DIMS]; /* dim[0..ndim-1]; unused dims are 1 */
	void *data;                   /* backend representation (plain: float[numel]) */
} cdm_tensor;

enum cdm_act {
	CDM_ACT_SILU,  /* x*sigmoid(x) ("silu" and "swish") */
	CDM_ACT_MISH,  /* x*tanh(softplus(x)), torch softplus threshold 20 */
	CDM_ACT_GELU,  /* exact 0.5x(1+erf(x/sqrt2)) */
	CDM_ACT_RELU,
	CDM_ACT_EXP,   /* exp(x): only the DDPM learned_range variance uses it */
	CDM_ACT_SQRT,  /* sqrt(max(x,0)): only the DDPM learned variance uses it */
	CDM_ACT_QUICK_GELU, /* x*sigmoid(1.702x): CLIP's "quick_gelu" MLP */
	CDM_ACT_COUNT
};

struct cdm_nn_ops {
	const char *name; /* "plain", "secure", ... */

	/* ---- tensor life cycle and inputs ---- */
	/* A new tensor of the given shape; contents unspecified. */
	int (*alloc)(void *ctx, int ndim, const int64_t *dim, cdm_tensor **out,
		     struct cdm_err *err);
	void (*free)(void *ctx, cdm_tensor *t); /* accepts NULL */
	/* Fill `out` from PUBLIC float data (numel values): timestep sinusoids,
	 * one-hot rows of public labels, constants. */
	int (*set_public)(void *ctx, cdm_tensor *out, const float *data, struct cdm_err *err);
	/* Optional (may be NULL): make `path` the weight source (plain: a
	 * safetensors file). */
	int (*load_weights)(void *ctx, const char *path, struct cdm_err *err);
	/* 1 if a weight of this exact name exists, else 0 (used to resolve legacy
	 * attention names before asking for a weight). */
	int (*has_weight)(void *ctx, const char *name);
	/* Bind the weight `name`; its stored shape must equal `dim` (ndim dims),
	 * else one error "<source>: tensor '<name>': shape [..], expected [..]".
	 * Creates *out itself (the wrapper does not pre-allocate). */
	int (*weight)(void *ctx, const char *name, int ndim, const int64_t *dim,
		      cdm_tensor **out, struct cdm_err *err);
	/* Optional: copy the values out as float32 (a secure backend reveals;
	 * it may leave this NULL). */
	int (*read)(void *ctx, const cdm_tensor *t, float *out, struct cdm_err *err);

	/* ---- layers (out is pre-allocated with the output shape) ---- */
	/* x [B,Ci,H,W], w [Co,Ci,kh,kw], b [Co] or NULL -> [B,Co,Ho,Wo] with
	 * Ho = (H+pad[0]+pad[2]-kh)/stride + 1, Wo = (W+pad[1]+pad[3]-kw)/stride + 1.
	 * pad = {top, left, bottom, right}, zero padding, cross-correlation. */
	int (*conv2d)(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		      const cdm_tensor *b, int stride, const int pad[4], struct cdm_err *err);
	/* x [..., In] (ndim 2 or 3), w [Out,In], b [Out] or NULL -> [..., Out]:
	 * y = x W^T + b. */
	int (*linear)(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *w,
		      const cdm_tensor *b, struct cdm_err *err);
	/* x [B,C,...] (ndim >= 2), C % groups == 0, gamma/beta [C] -> same shape.
	 * Per (batch, group) mean and biased variance over (C/groups)*spatial. */
	int (*group_norm)(void *ctx, cdm_tensor *out, const cdm_tensor *x, int groups,
			  double eps, const cdm_tensor *gamma, const cdm_tensor *beta,
			  struct cdm_err *err);
	/* x [..., D], gamma/beta [D] -> same shape; biased variance over D. */
	int (*layer_norm)(void *ctx, cdm_tensor *out, const cdm_tensor *x, double eps,
			  const cdm_tensor *gamma, const cdm_tensor *beta, struct cdm_err *err);
	/* Elementwise activation, any shape. */
	int (*act)(void *ctx, cdm_tensor *out, const cdm_tensor *x, enum cdm_act kind,
		   struct cdm_err *err);
	/* q [B,N,I], k and v [B,M,I], I % heads == 0, dh = I/heads -> [B,N,I]:
	 * per batch and head h (channels [h*dh,(h+1)*dh)):
	 * softmax(Q_h K_h^T * scale) V_h, softmax over the M keys. */
	int (*attention)(void *ctx, cdm_tensor *out, const cdm_tensor *q, const cdm_tensor *k,
			 const cdm_tensor *v, int heads, double scale, struct cdm_err *err);
	/* onehot [B,K] (rows one-hot: a label is a backend input, secret in the
	 * secure backend), table [K,D] -> [B,D] = onehot x table. */
	int (*embed)(void *ctx, cdm_tensor *out, const cdm_tensor *onehot,
		     const cdm_tensor *table, struct cdm_err *err);

	/* ---- elementwise and layout ---- */
	/* n >= 1 tensors of one shape: out = sum_i coef[i]*xs[i] + c0. Covers
	 * add, sub, scale and every sampler update. */
	int (*lincomb)(void *ctx, cdm_tensor *out, int n, const cdm_tensor *const *xs,
		       const double *coef, double c0, struct cdm_err *err);
	/* a, b of one shape: out = a*b elementwise. */
	int (*mul)(void *ctx, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		   struct cdm_err *err);
	/* x [B,C,...], v [B,C]: out[b,c,...] = x[b,c,...] + v[b,c] (or *). */
	int (*bcast_add)(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
			 struct cdm_err *err);
	int (*bcast_mul)(void *ctx, cdm_tensor *out, const cdm_tensor *x, const cdm_tensor *v,
			 struct cdm_err *err);
	/* out = min(max(x, lo), hi), any shape. */
	int (*clamp)(void *ctx, cdm_tensor *out, const cdm_tensor *x, double lo, double hi,
		     struct cdm_err *err);
	/* Optional (plaintext only; may be NULL): diffusers' dynamic thresholding
	 * per batch element of x [B,...]: s = quantile(|x|, ratio) clamped to
	 * [1, max]; out = clamp(x, -s, s)/s. */
	int (*threshold)(void *ctx, cdm_tensor *out, const cdm_tensor *x, double ratio,
			 double max, struct cdm_err *err);
	/* a [B,Ca,...], b [B,Cb,...] (same other dims) -> [B,Ca+Cb,...], a first. */
	int (*concat)(void *ctx, cdm_tensor *out, const cdm_tensor *a, const cdm_tensor *b,
		      struct cdm_err *err);
	/* x [B,C,...] -> [B,len,...]: channels [start, start+len). */
	int (*slice)(void *ctx, cdm_tensor *out, const cdm_tensor *x, int64_t start,
		     struct cdm_err *err);
	/* x [B,C,H,W] -> [B,C,2H,2W], out[y][x] = in[y/2][x/2]. */
	int (*upsample2x)(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err);
	/* x [B,C,H,W] -> [B,C,H/2,W/2] (floor), mean of each 2x2 window. */
	int (*avgpool2x)(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err);
	/* [B,C,H,W] <-> [B,H*W,C], token n = y*W + x. from_tokens reads H and W
	 * from out's shape. */
	int (*to_tokens)(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err);
	int (*from_tokens)(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err);

	/* ---- added for Stable Diffusion (may be NULL: the wrapper then fails
	 * with "the X backend does not support op Y") ---- */
	/* q, k, v [B,N,I], I % heads == 0 -> [B,N,I]: attention as above with a
	 * causal mask, query i attends to keys j <= i only (CLIP text encoder). */
	int (*attention_causal)(void *ctx, cdm_tensor *out, const cdm_tensor *q,
				const cdm_tensor *k, const cdm_tensor *v, int heads, double scale,
				struct cdm_err *err);
	/* Same elements in row-major order under a new shape (out's shape has
	 * the same numel), e.g. [B*L,D] <-> [B,L,D]. */
	int (*reshape)(void *ctx, cdm_tensor *out, const cdm_tensor *x, struct cdm_err *err);
};

typedef struct cdm_nn {
	const struct cdm_nn_ops *ops;
	void *ctx; /* backend state, owned by whoever made the cdm_nn */
} cdm_nn;

/* ---- shapes ------------------------------------------------------------- */
int64_t cdm_tensor_numel(const cdm_tensor *t);
/* "[2,3,4]" into buf (always terminated). */
const char *cdm_shape_str(char *buf, size_t size, int ndim, const int64_t *dim);
int cdm_tensor_same_shape(const cdm_tensor *a, const cdm_tensor *b);

/* ---- wrappers (shape checks + output allocation); see the ops above ---- */
int cdm_nn_alloc(cdm_nn *nn, int ndim, const int64_t *dim, cdm_tensor **out,
		 struct cdm_err *err);
void cdm_nn_free(cdm_nn *nn, cdm_tensor *t); /* accepts NULL */
/* A new tensor holding public data (numel floats). */
int cdm_nn_public(cdm_nn *nn, int ndim, const int64_t *dim, const float *data,
		  cdm_tensor **out, struct cdm_err *err);
int cdm_nn_load_weights(cdm_nn *nn, const char *path, struct cdm_err *err);
int cdm_nn_has_weight(cdm_nn *nn, const char *name);
int cdm_nn_weight(cdm_nn *nn, const char *name, int ndim, const int64_t *dim,
		  cdm_tensor **out, struct cdm_err *err);
/* out holds numel floats. CDM_EINPUT if the backend cannot read. */
int cdm_nn_read(cdm_nn *nn, const cdm_tensor *t, float *out, struct cdm_err *err);

int cdm_nn_conv2d(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *w, const cdm_tensor *b,
		  int stride, const int pad[4], cdm_tensor **out, struct cdm_err *err);
int cdm_nn_linear(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *w, const cdm_tensor *b,
		  cdm_tensor **out, struct cdm_err *err);
int cdm_nn_group_norm(cdm_nn *nn, const cdm_tensor *x, int groups, double eps,
		      const cdm_tensor *gamma, const cdm_tensor *beta, cdm_tensor **out,
		      struct cdm_err *err);
int cdm_nn_layer_norm(cdm_nn *nn, const cdm_tensor *x, double eps, const cdm_tensor *gamma,
		      const cdm_tensor *beta, cdm_tensor **out, struct cdm_err *err);
int cdm_nn_act(cdm_nn *nn, const cdm_tensor *x, enum cdm_act kind, cdm_tensor **out,
	       struct cdm_err *err);
int cdm_nn_attention(cdm_nn *nn, const cdm_tensor *q, const cdm_tensor *k,
		     const cdm_tensor *v, int heads, double scale, cdm_tensor **out,
		     struct cdm_err *err);
int cdm_nn_embed(cdm_nn *nn, const cdm_tensor *onehot, const cdm_tensor *table,
		 cdm_tensor **out, struct cdm_err *err);
/* Causal self-attention (optional op; see attention_causal). */
int cdm_nn_attention_causal(cdm_nn *nn, const cdm_tensor *q, const cdm_tensor *k,
			    const cdm_tensor *v, int heads, double scale, cdm_tensor **out,
			    struct cdm_err *err);
/* x viewed under a new shape of ndim dims with the same numel (optional op). */
int cdm_nn_reshape(cdm_nn *nn, const cdm_tensor *x, int ndim, const int64_t *dim,
		   cdm_tensor **out, struct cdm_err *err);
int cdm_nn_lincomb(cdm_nn *nn, int n, const cdm_tensor *const *xs, const double *coef,
		   double c0, cdm_tensor **out, struct cdm_err *err);
/* Shorthands over lincomb. */
int cdm_nn_add(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err);
int cdm_nn_sub(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err);
/* out = s*x + c */
int cdm_nn_scale(cdm_nn *nn, const cdm_tensor *x, double s, double c, cdm_tensor **out,
		 struct cdm_err *err);
/* out = a*x + b*y */
int cdm_nn_axpby(cdm_nn *nn, double a, const cdm_tensor *x, double b, const cdm_tensor *y,
		 cdm_tensor **out, struct cdm_err *err);
int cdm_nn_mul(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
	       struct cdm_err *err);
int cdm_nn_bcast_add(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *v, cdm_tensor **out,
		     struct cdm_err *err);
int cdm_nn_bcast_mul(cdm_nn *nn, const cdm_tensor *x, const cdm_tensor *v, cdm_tensor **out,
		     struct cdm_err *err);
int cdm_nn_clamp(cdm_nn *nn, const cdm_tensor *x, double lo, double hi, cdm_tensor **out,
		 struct cdm_err *err);
int cdm_nn_threshold(cdm_nn *nn, const cdm_tensor *x, double ratio, double max,
		     cdm_tensor **out, struct cdm_err *err);
int cdm_nn_concat(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
		  struct cdm_err *err);
int cdm_nn_slice(cdm_nn *nn, const cdm_tensor *x, int64_t start, int64_t len,
		 cdm_tensor **out, struct cdm_err *err);
int cdm_nn_upsample2x(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err);
int cdm_nn_avgpool2x(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err);
int cdm_nn_to_tokens(cdm_nn *nn, const cdm_tensor *x, cdm_tensor **out, struct cdm_err *err);
int cdm_nn_from_tokens(cdm_nn *nn, const cdm_tensor *x, int64_t h, int64_t w,
		       cdm_tensor **out, struct cdm_err *err);

/* Public sinusoidal timestep embedding (diffusers get_timestep_embedding,
 * scale 1, max_period 10000) of B timesteps -> a new [B,dim] tensor:
 * f_i = exp(-ln(10000) i/(half - shift)), [sin(t f), cos(t f)], halves
 * swapped if flip_sin_to_cos, zero-padded if dim is odd. Computed in
 * float32 like torch. */
int cdm_nn_timestep_embedding(cdm_nn *nn, const double *t, int64_t batch, int64_t dim,
			      int flip_sin_to_cos, double freq_shift, cdm_tensor **out,
			      struct cdm_err *err);
/* Public one-hot rows [B,K] of labels (each 0 <= label < K). */
int cdm_nn_onehot(cdm_nn *nn, const int64_t *labels, int64_t batch, int64_t k,
		  cdm_tensor **out, struct cdm_err *err);

/* ---- the float32 backend (plain.c) ------------------------------------- */
/* A plaintext backend. Weights come from the safetensors file given to
 * cdm_nn_load_weights (F32/F16/BF16/F64, converted to float32). Free with
 * cdm_nn_plain_free. */
int cdm_nn_plain_new(cdm_nn **out, struct cdm_err *err);
void cdm_nn_plain_free(cdm_nn *nn);
/* The float32 data of a plain tensor (numel values, row-major). */
float *cdm_nn_plain_data(const cdm_tensor *t);

#endif
