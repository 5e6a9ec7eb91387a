/*
 * model/sd_pipe: plaintext (float32) runs of the Stable Diffusion components
 * from safetensors inputs to safetensors outputs -- the library side of
 * `cdm-unet-step --vae-decode / --text-encode / --tokenize / --context`.
 *
 * Owns: finding the named input tensor in a file and checking it (one
 * message naming the file, tensor and expected shape), running the
 * component on the plain backend, and filling a writer with the output;
 * and classifier-free guidance (the batch layout [uncond; cond] of
 * diffusers' StableDiffusionPipeline), written once over the nn op table
 * so the plaintext reference and the secure run share it.
 * Does not own: where the output goes (the caller saves the writer
 * atomically), the components themselves (vae.h, clip.h, tokenizer.h).
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_MODEL_SD_PIPE_H
#define CDM_MODEL_SD_PIPE_H

#include "../base/base.h"
#include "../fmt/st.h"
#include "../nn/nn.h"
#include "unet_cond.h"

/* AutoencoderKL.decode of tensor `z` [B,latent,h,w] of `in` (already divided
 * by the scaling factor) -> *out holds F32 `x` [B,C,H,W] (not clamped).
 * Without `z`, tensor `x` (the sampler's latents, as the step loop writes
 * them) is divided by the VAE's scaling_factor first, as the pipeline does. */
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

/* ---- classifier-free guidance (any backend with reshape) ---- */

/* a [Ba,...] and b [Bb,...] (same other dims) -> new [Ba+Bb,...], a first. */
int cdm_sd_batch_cat(cdm_nn *nn, const cdm_tensor *a, const cdm_tensor *b, cdm_tensor **out,
		     struct cdm_err *err);
/* Rows [start, start+len) of x [B,...] along the batch -> new [len,...]. */
int cdm_sd_batch_slice(cdm_nn *nn, const cdm_tensor *x, int64_t start, int64_t len,
		       cdm_tensor **out, struct cdm_err *err);
/* ctx [2,L,D] = [uncond; cond] -> new [2B,L,D] = [uncond x B; cond x B]
 * (for B == 1 or ctx already [2B,L,D]: a copy). */
int cdm_sd_expand_ctx(cdm_nn *nn, const cdm_tensor *ctx, int64_t batch, cdm_tensor **out,
		      struct cdm_err *err);
/* Guided noise prediction: the UNet on [x; x] with ctx [2B,L,D] = [uncond;
 * cond] and timesteps t[B] (both halves), then eps = eps_u + s (eps_c -
 * eps_u) = (1-s) eps_u + s eps_c -> new [B,out,H,W]. With s <= 1 (as
 * diffusers, which guides only when s > 1) the UNet runs on x with the cond
 * half of ctx alone. */
int cdm_sd_guided_eps(cdm_nn *nn, cdm_unet_cond *u, const cdm_tensor *x, const double *t,
		      const cdm_tensor *ctx, double scale, cdm_tensor **eps,
		      struct cdm_err *err);

#endif
