/*
 * bench/sd: the measured projection of Stable Diffusion 1.5 under the secure
 * engine (cdm-bench sd --estimate).
 *
 * Owns: the SD 1.5 architecture as a list of block instances (UNet2D-
 * ConditionModel with block_out_channels 320/640/1280/1280, 2 layers per
 * block, 8 heads, cross_attention_dim 768, conv proj_in/out; AutoencoderKL
 * decoder 128/256/512/512; CLIPTextModel ViT-L/14: 12 layers, 768 wide, 12
 * heads, 77 tokens, vocabulary 49408 -- the shapes of
 * reference/keys/keys_sd15_unet.tsv and keys_sd_vae_decoder.tsv), running
 * ONE real-sized instance of every distinct block securely (three parties
 * in three threads over cdm_net_local, in a forked child per block so that
 * its peak memory is its own), and the projection.
 * Does not own: printing (the caller prints the strings it gets), the
 * protocols (lib/nn/secure).
 *
 * Measurement. Weights and inputs are random secret sharings of values with
 * variance 1/fan_in (the costs of every protocol are data-independent; the
 * values only keep the nonlinear inputs in their domains). Weight creation
 * is excluded from the timings. Per block: seconds (slowest party), bytes
 * sent (all three parties, and the busiest party), rounds (busiest party),
 * and the child's peak RSS (three parties together).
 *
 * Fractions. A block whose largest buffer (conv im2col, attention scores,
 * GEGLU activations) would exceed max_elems elements is run on a strip of
 * 1/2^k of its image rows (all channels and the full width; attention: the
 * queries of the strip against ALL keys, the strip's keys/values tiled to
 * the full length). Every op of a block is then linear in the number of
 * rows, so seconds and bytes are scaled by 2^k; rounds are not (the same
 * calls run whatever the size). GroupNorm statistics over a strip cost the
 * same per element; the per-group reciprocal square roots (32 per image)
 * are the only part that does not scale (negligible).
 *
 * Projection (per resolution 256 and 512, latent 32 or 64):
 *   unet_step   sum over blocks of count x block, batch 2 (classifier-free
 *               guidance: conditional and unconditional in one call)
 *   unet_50     50 x unet_step (DDIM 50 steps; the sampler updates, a few
 *               truncations of 4 x latent^2 elements per step, are omitted)
 *   vae_decode  batch 1;  text_encoder: batch 2 (prompt and "")
 *   image       unet_50 + vae_decode + text_encoder
 * Network time, projected from the loopback run: seconds + (bytes of the
 * busiest party) / bandwidth + rounds x RTT, LAN 1 Gbit/s 0.2 ms, WAN
 * 100 Mbit/s 20 ms.
 *
 * Thread-safety: one call at a time per process (it forks and waits for its
 * own children only).
 */
#ifndef CDM_BENCH_SD_H
#define CDM_BENCH_SD_H

#include <signal.h>
#include <stdint.h>

#include "../base/base.h"
#include "../nonlin/nonlin.h"
#include "model.h"

struct cdm_bench_sd_opts {
	int resolution;          /* 256, 512, or 0 for both */
	enum cdm_suite suite;
	int64_t max_elems;       /* 0 = default (1 << 21) */
	int only_net;            /* 0: all three network columns; else 1 + enum cdm_bench_net */
	/* progress (may be NULL): one line per block */
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	volatile sig_atomic_t *stop; /* set by the caller's SIGINT handler, or NULL */
};

struct cdm_bench_sd_block {
	char name[64];       /* "resnet 640->1280 16x16" */
	char part[8];        /* "unet", "vae", "clip" */
	int resolution;      /* image side */
	int count;           /* instances per UNet call / decode / encode */
	int batch;
	int shift;           /* run on 1/2^shift of the rows */
	double seconds;      /* whole block (scaled), slowest party */
	double bytes;        /* whole block, all three parties */
	double bytes_party;  /* whole block, busiest party */
	uint64_t rounds;     /* busiest party */
	uint64_t peak_rss;   /* bytes, the run (three parties, at the fraction) */
};

struct cdm_bench_sd_proj {
	int resolution;
	char what[24];       /* unet_step, unet_50, vae_decode, text_encoder, image */
	double seconds, bytes, bytes_party, rounds;
	double t_net[3];     /* indexed by enum cdm_bench_net */
};

struct cdm_bench_sd_result {
	enum cdm_suite suite;
	int only_net;
	int64_t max_elems;
	struct cdm_bench_sd_block *blocks;
	int nblocks;
	struct cdm_bench_sd_proj proj[10];
	int nproj;
};

int cdm_bench_sd_estimate(const struct cdm_bench_sd_opts *o, struct cdm_bench_sd_result **out,
			  struct cdm_err *err);
void cdm_bench_sd_free(struct cdm_bench_sd_result *r); /* accepts NULL */
/* The result as a table or as one JSON object; cdm_free the string. */
int cdm_bench_sd_table(const struct cdm_bench_sd_result *r, char **out, struct cdm_err *err);
int cdm_bench_sd_json(const struct cdm_bench_sd_result *r, char **out, struct cdm_err *err);

/* SD 1.5 UNet parameter count implied by the block list (859,520,964 in
 * keys_sd15_unet.tsv): a check that the block shapes are the real ones. */
int64_t cdm_bench_sd_unet_params(void);
/* Same for the VAE decoder with post_quant_conv (49,490,199). */
int64_t cdm_bench_sd_vae_params(void);

#endif
