/*
 * nn/secure: the op table of nn.h on 2-out-of-3 replicated secret shares
 * (lib/mpc), with the nonlinear functions of lib/nonlin in a chosen suite.
 *
 * Owns: the secure tensor representation (a cdm_shr of this party's two
 * components, or a PUBLIC float tensor that every party knows), weight
 * binding from a model share file, and the protocol choice per op:
 *   conv2d      im2col of both components (local) + one secret x secret
 *               cdm_mpc_matmul, one truncation per output
 *   linear      secret x secret matmul (public input: local GEMM + truncation)
 *   group_norm  cdm_nl_norm_rows over rows = batch*groups, then gamma (mul_trunc)
 *               and beta (local add)
 *   act         lib/nonlin (ReLU: cdm_mpc_relu)
 *   attention   Q*scale (public, truncated), per-head QK^T and AV matmuls,
 *               cdm_nl_softmax_rows
 *   embed       one-hot x table: an INTEGER one-hot (a secret label from an
 *               input share) multiplies without truncation
 *   lincomb     public coefficients: local products + one truncation (none
 *               when every coefficient is an integer)
 *   clamp       two comparisons in one call + one multiplication round
 *   layout ops  (concat, slice, upsample, tokens, bcast_add) are local;
 *               avgpool is a local sum + one truncation by 2 bits.
 * Does not own: the mpc session (borrowed), the model share (borrowed; it
 * must outlive every weight tensor), the nonlinear approximations.
 *
 * Public tensors (set_public: timestep sinusoids, one-hot rows of public
 * labels) stay public where that is cheaper (a public x secret product is
 * local); any other op uses their trivial sharing.
 *
 * Costs are charged with cdm_mpc_set_label: conv, linear, groupnorm,
 * layernorm, silu / mish / gelu / relu / exp / sqrt, attention_matmul,
 * softmax, embed; lincomb, mul, broadcast and clamp ops go to the "phase"
 * label (default "elementwise"; lib/sample sets "sampler" around the
 * sampler update).
 *
 * Thread-safety: as the cdm_mpc (one thread).
 */
#ifndef CDM_NN_SECURE_H
#define CDM_NN_SECURE_H

#include "../base/base.h"
#include "../fmt/share.h"
#include "../fmt/st.h"
#include "../mpc/mpc.h"
#include "../nonlin/nonlin.h"
#include "nn.h"

/* A secure backend over session m (borrowed; must outlive the cdm_nn). */
int cdm_nn_secure_new(cdm_nn **out, cdm_mpc *m, enum cdm_suite suite, struct cdm_err *err);
void cdm_nn_secure_free(cdm_nn *nn); /* accepts NULL */

/* Weights come from this model share (borrowed): weight `name` is the pair
 * name.a / name.b. Its frac_bits must equal the session's. */
int cdm_nn_secure_bind(cdm_nn *nn, cdm_share *model, struct cdm_err *err);

/* Public-model mode: weights come from this PLAINTEXT safetensors file
 * (borrowed, F32/F16/BF16 as lib/fmt/st reads them; NaN or infinite
 * values are refused naming the tensor). Every party holds the same
 * weights, so conv2d, linear, embed and the norms' gamma take local
 * public-times-share products and one truncation instead of a
 * multiplication protocol; ops whose inputs are all public (the timestep
 * MLP) are computed in float32 and stay public. Only the user's data and
 * everything computed from it stays secret. */
int cdm_nn_secure_bind_public(cdm_nn *nn, cdm_st *weights, struct cdm_err *err);
/* The same from several plaintext files (a Stable Diffusion pipeline: the
 * UNet, VAE and text encoder files; borrowed), a weight name looked up in
 * each in order. */
#define CDM_NN_PUBLIC_FILES 4
int cdm_nn_secure_bind_public_files(cdm_nn *nn, cdm_st *const *files, size_t n,
				    struct cdm_err *err);

/* Run the following ops on session m (same party and fraction bits as the
 * one the backend was made with; borrowed). lib/sample gives each
 * sampling step a fresh session whose randomness derives from the step
 * index, so a resumed run repeats an uninterrupted one bit for bit. */
int cdm_nn_secure_set_mpc(cdm_nn *nn, cdm_mpc *m, struct cdm_err *err);

/* Label charged by the generic ops (lincomb, mul, bcast, clamp); NULL
 * restores "elementwise". The string must stay valid. */
void cdm_nn_secure_set_phase(cdm_nn *nn, const char *label);

/* A new tensor of shape dim taking over the sharing *s (s is zeroed).
 * `integer` marks values that are plain integers (a one-hot label), not
 * fixed point. s->n must equal the shape's element count. */
int cdm_nn_secure_wrap(cdm_nn *nn, int ndim, const int64_t *dim, cdm_shr *s, int integer,
		       cdm_tensor **out, struct cdm_err *err);
/* The sharing of a tensor of this backend (public tensors: their trivial
 * sharing). Borrowed. */
const cdm_shr *cdm_nn_secure_shr(const cdm_tensor *t);

#endif
