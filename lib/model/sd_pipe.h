/*
 * model/sd_pipe: plaintext (float32) runs of the Stable Diffusion components
 * from safetensors inputs to safetensors outputs -- the library side of
 * `cdm-unet-step --vae-decode / --text-encode / --tokenize / --context`.
 *
 * Owns: finding the named input tensor in a file and checking it (one
 * message naming the file, tensor and expected shape), running the
 * component on the plain backend, and filling a writer with the output.
 * Does not own: where the output goes (the caller saves the writer
 * atomically), the components themselves (vae.h, clip.h, tokenizer.h).
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_MODEL_SD_PIPE_H
#define CDM_MODEL_SD_PIPE_H

#include "../base/base.h"
#include "../fmt/st.h"
#include "../nn/nn.h"

/* AutoencoderKL.decode of tensor `z` [B,latent,h,w] of `in` (already divided
 * by the scaling factor) -> *out holds F32 `x` [B,C,H,W] (not clamped). */
int cdm_sd_vae_decode_st(const char *model_dir, const cdm_st *in, cdm_st_writer **out,
			 struct cdm_err *err);
/* CLIPTextModel last_hidden_state of integer tensor `ids` [B,L] (I64 or I32)
 * of `in` -> *out holds F32 `ctx` [B,L,D]. */
int cdm_sd_text_encode_st(const char *model_dir, const cdm_st *in, cdm_st_writer **out,
			  struct cdm_err *err);
/* Tokenize n prompts -> *out holds I64 `ids` [n, model_max_length]. */
int cdm_sd_tokenize_st(const char *dir, const char *const *prompts, int n,
		       cdm_st_writer **out, struct cdm_err *err);
/* The context tensor of a file for --context: `ctx` (or
 * `encoder_hidden_states`, or the file's only tensor) [B,L,D] as a new
 * tensor of nn. */
int cdm_sd_load_ctx(cdm_nn *nn, const char *path, cdm_tensor **ctx, struct cdm_err *err);

#endif
