/*
 * model/clip: transformers' CLIPTextModel (the SD text encoder) over the nn
 * op table: token + position embeddings, pre-LN encoder layers with causal
 * multi-head self-attention (q/k/v/out with bias, scale head_dim^-1/2) and a
 * quick_gelu (or exact gelu) MLP, final LayerNorm; the output is
 * last_hidden_state, which SD uses as encoder_hidden_states
 * (reference/diffusers.md §4.4). Weight names text_model.*; other tensors in
 * the file (position_ids, a text_projection) are ignored.
 *
 * Owns: the bound weights. Does not own: the backend (must outlive the
 * model), tokenization (tokenizer.h).
 * Token ids enter as one-hot rows (so a secure backend can keep them
 * secret: the lookup is then a product with the table); positions are
 * public. Needs the optional ops attention_causal and reshape.
 * Thread-safety: one thread (as its cdm_nn).
 */
#ifndef CDM_MODEL_CLIP_H
#define CDM_MODEL_CLIP_H

#include "../base/base.h"
#include "../nn/nn.h"
#include "sd_config.h"

typedef struct cdm_clip cdm_clip;

int cdm_clip_new(cdm_clip **out, cdm_nn *nn, const struct cdm_clip_config *cfg,
		 struct cdm_err *err);
/* A text encoder folder (config.json + model.safetensors) or an SD pipeline
 * folder with text_encoder/. */
int cdm_clip_load(cdm_clip **out, cdm_nn *nn, const char *dir, struct cdm_err *err);
void cdm_clip_free(cdm_clip *c);

const struct cdm_clip_config *cdm_clip_config(const cdm_clip *c);
int64_t cdm_clip_params(const cdm_clip *c);

/* last_hidden_state of B sequences of L tokens given as one-hot rows
 * onehot [B*L, vocab] (row b*L+i is token i of sequence b); L <=
 * max_position_embeddings. *out is a new [B,L,hidden]. */
int cdm_clip_forward(cdm_clip *c, const cdm_tensor *onehot, int64_t batch, int64_t len,
		     cdm_tensor **out, struct cdm_err *err);
/* The same from public ids[B*L] (each 0 <= id < vocab_size). */
int cdm_clip_encode_ids(cdm_clip *c, const int64_t *ids, int64_t batch, int64_t len,
			cdm_tensor **out, struct cdm_err *err);

#endif
