/*
 * prg: AES-128-CTR pseudo-random streams (OpenSSL EVP, AES-NI when the CPU
 * has it).
 *
 * Owns: one keystream per cdm_prg (key = 16-byte seed, counter from 0), seed
 * derivation for independent sub-streams, uniform ring elements, Gaussians.
 * Does not own: agreeing seeds between parties (lib/mpc does that over the
 * channels) -- a cdm_prg is just a deterministic stream.
 *
 * Determinism: two cdm_prg built from the same seed produce the same bytes
 * for the same sequence of calls; the parties rely on this to stay in
 * lockstep. Not thread-safe; use one cdm_prg per thread.
 */
#ifndef CDM_PRG_H
#define CDM_PRG_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_SEED_BYTES 16

typedef struct cdm_prg {
	void *ctx;                     /* EVP_CIPHER_CTX, CTR mode */
	uint8_t seed[CDM_SEED_BYTES];  /* the key */
	uint64_t blocks;               /* 16-byte blocks consumed so far */
} cdm_prg;

int cdm_prg_init(cdm_prg *g, const uint8_t seed[CDM_SEED_BYTES], struct cdm_err *err);
void cdm_prg_free(cdm_prg *g); /* accepts a zeroed or freed cdm_prg */

/* Fill buf with n keystream bytes. Output stays block-aligned: each call
 * consumes ceil(n/16) blocks, so call sequences, not byte counts, define
 * the stream. Calls of at least 256 KiB are split over the --threads pool
 * (lib/ring/pool.h) with the same bytes. */
void cdm_prg_bytes(cdm_prg *g, void *buf, size_t n);
void cdm_prg_u64(cdm_prg *g, uint64_t *out, size_t n);

/* Open `out` as an independent reader of g's stream positioned `ahead`
 * blocks after g's current position (g is not moved). With cdm_prg_skip this
 * lets threads expand disjoint parts of one stream: the bytes are those a
 * sequence of calls on g would give. out must be freed with cdm_prg_free. */
int cdm_prg_open_at(cdm_prg *out, const cdm_prg *g, uint64_t ahead, struct cdm_err *err);

/* Advance g by `blocks` 16-byte blocks without producing them. */
void cdm_prg_skip(cdm_prg *g, uint64_t blocks);

/* Derive the seed of an independent stream: AES_seed(label || index). */
void cdm_prg_derive(const uint8_t seed[CDM_SEED_BYTES], const char *label, uint64_t index,
		    uint8_t out[CDM_SEED_BYTES]);

/* n standard normal doubles (Box-Muller on 53-bit uniforms). */
void cdm_prg_gauss(cdm_prg *g, double *out, size_t n);

/* Fresh seed from the operating system (getrandom). */
int cdm_seed_random(uint8_t out[CDM_SEED_BYTES], struct cdm_err *err);

#endif
