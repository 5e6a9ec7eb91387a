/*
 * nn/secure_sd: the Stable Diffusion ops of the secure backend (internal to
 * lib/nn; secure.c wires them into its op table): causal self-attention
 * for the CLIP text encoder, quick_gelu, and reshape. The other SD pieces
 * need no new protocol: LayerNorm is secure.c's layer_norm (norm_rows over
 * the last dim), cross-attention is its attention with M != N keys, GEGLU is
 * slice + GELU + mul, and the token-embedding lookup with secret ids is its
 * embed of an integer one-hot (no truncation).
 *
 * Owns: the protocols below, on raw sharings. Does not own: the tensors,
 * the op table or the session (borrowed from secure.c), the nonlinear
 * approximations (lib/nonlin).
 *
 * Causal softmax, structurally: the masked keys j > i of query row i never
 * enter any arithmetic, so their weight is exactly 0 (both share
 * components are zero, whatever the suite) and no large public constant is
 * compared (comparison ranges stay those of the real logits):
 *   1. row max over a copy where each masked entry is replaced by the row's
 *      diagonal logit (a valid key; local), one max_rows tree;
 *   2. exp of x - max on the N(N+1)/2 valid entries of each matrix only;
 *   3. row sums (local), one reciprocal per row, one product per entry.
 * Cost labels: "attention_matmul" for the Q scaling and the two matmuls,
 * "softmax" for the softmax, "gelu" for quick_gelu (same as GELU in the
 * per-layer tables).
 *
 * Thread-safety: as the cdm_mpc (one thread).
 */
#ifndef CDM_NN_SECURE_SD_H
#define CDM_NN_SECURE_SD_H

#include <stddef.h>

#include "../base/base.h"
#include "../mpc/mpc.h"
#include "../nonlin/nonlin.h"

/* q, k, v [B,N,H*dh] -> out [B,N,H*dh] (pre-allocated): per batch and head,
 * softmax_causal(Q_h K_h^T * scale) V_h. */
int cdm_nn_secure_sd_attention_causal(cdm_mpc *m, enum cdm_suite s, cdm_shr *out,
				      const cdm_shr *q, const cdm_shr *k, const cdm_shr *v,
				      size_t B, size_t N, size_t H, size_t dh, double scale,
				      struct cdm_err *err);
/* Softmax of each row i of mats square N x N matrices over columns j <= i;
 * entries j > i of out are exactly 0. out: zeroed (allocated) or x->n. */
int cdm_nn_secure_sd_softmax_causal(cdm_mpc *m, enum cdm_suite s, cdm_shr *out,
				    const cdm_shr *x, size_t mats, size_t N, struct cdm_err *err);
/* out = x * sigmoid(1.702 x) (CLIP's quick_gelu); out pre-allocated, x->n. */
int cdm_nn_secure_sd_quick_gelu(cdm_mpc *m, enum cdm_suite s, cdm_shr *out, const cdm_shr *x,
				struct cdm_err *err);
/* out = x element for element (a new shape is only a new view; local). */
int cdm_nn_secure_sd_reshape(cdm_shr *out, const cdm_shr *x, struct cdm_err *err);

#endif
