/*
 * fmt/share: share files (SPEC section 3) -- one party's half of a
 * replicated secret sharing, stored as safetensors.
 *
 * Owns: the layout and its validation. A share file is a safetensors file
 * whose `__metadata__` holds
 *   format      "cdm-share/1" (or "cdm-share/2", below)
 *   party       "0", "1" or "2"
 *   ring_bits   "64"
 *   frac_bits   decimal, CDM_FRAC_BITS_MIN..CDM_FRAC_BITS_MAX
 *   sharing_id  32 lowercase hex digits, random, common to the 3 files
 *   kind        "model" | "input" | "output" | "checkpoint"
 *   config      (model shares, required) the UNet config.json text
 *   scheduler_config (model shares, optional) scheduler_config.json text
 * plus free-form keys. Each secret tensor NAME is stored as two U64 tensors
 * NAME.a and NAME.b of the same shape: party i's components (x_i, x_{i+1}),
 * indices mod 3, with x = x_0 + x_1 + x_2 mod 2^64. No other tensors are
 * allowed. Does not own: how shares are produced or used (lib/mpc).
 *
 * Format 2 ("cdm-share/2", written when a component is seeded): a component
 * of every secret may instead derive from a 16-byte seed, metadata
 * "seed_a" / "seed_b" (32 lowercase hex digits); its NAME.a (or NAME.b)
 * tensors are then absent and component k of NAME is the AES-128-CTR
 * stream keyed by HMAC-SHA256(seed, NAME) (cdm_share_seed_expand). A
 * seeded file also carries "secrets", a JSON object NAME -> shape listing
 * every secret (with both components seeded, nothing else is stored). The
 * model shares of lib/sample use it so that x_0 and x_1 are pseudo-random:
 * party 0 holds two seeds, party 1 x_1's seed and x_2, party 2 x_2 and
 * x_0's seed -- each file only the seeds of its own two components.
 * Format 1 files (always full components) are still read; other versions
 * are refused naming the format.
 *
 * Files are written with mode 0600 through the atomic safetensors writer.
 * Thread-safety: an open cdm_share is read-only and may be shared between
 * threads once opened; writers are single-threaded.
 */
#ifndef CDM_FMT_SHARE_H
#define CDM_FMT_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "st.h"

#define CDM_SHARE_FORMAT "cdm-share/1"    /* full components only: written when
					   * nothing is seeded (input, output, checkpoint
					   * shares) */
#define CDM_SHARE_FORMAT_SEEDED "cdm-share/2" /* seeded components allowed */
#define CDM_SHARE_ID_LEN 32 /* hex digits */

enum cdm_share_kind {
	CDM_SHARE_MODEL, CDM_SHARE_INPUT, CDM_SHARE_OUTPUT, CDM_SHARE_CHECKPOINT,
	CDM_SHARE_KIND_COUNT
};

/* An open, validated share file. Fields are read-only for callers. */
typedef struct cdm_share {
	cdm_st *st;                            /* the underlying safetensors file */
	const char *path;                      /* as given (stdin: "stdin") */
	int party;                             /* 0..2 */
	int ring_bits;                         /* 64 */
	int frac_bits;                         /* fraction bits of the encoding */
	char sharing_id[CDM_SHARE_ID_LEN + 1]; /* hex, NUL-terminated */
	enum cdm_share_kind kind;
	size_t nsecret;                        /* secret tensors (pairs) */
	const char **secret;                   /* [nsecret] names without .a/.b, sorted */
	void **owned;                          /* [nowned] copies of unaligned data and
						* expanded seeded components */
	size_t nowned;
	int version;                           /* 1 or 2 */
	int seeded[2];                         /* component a / b derives from a seed */
	uint8_t seed[2][16];                   /* its seed (secret: party's own) */
	struct cdm_st_tensor *virt;            /* [nvirt] the 'secrets' index (seeded) */
	size_t nvirt;
	void **expanded;                       /* [2*nvirt] expanded seeded components */
} cdm_share;

const char *cdm_share_kind_name(enum cdm_share_kind k); /* "model", ... */
/* 0 and *out for "model" etc., -1 for anything else. */
int cdm_share_kind_parse(const char *s, enum cdm_share_kind *out);

/* Open and validate. expected_kind ("model", ...) or NULL for any kind.
 * Messages name the file: "model.1: is an input share, expected a model
 * share". */
int cdm_share_open(cdm_share **out, const char *path, const char *expected_kind,
		   struct cdm_err *err);
/* Same from memory (copied); `what` names it. */
int cdm_share_open_mem(cdm_share **out, const void *buf, size_t len, const char *what,
		       const char *expected_kind, struct cdm_err *err);
void cdm_share_close(cdm_share *sh);

/* A `__metadata__` value (e.g. "config"), or NULL. */
const char *cdm_share_meta(const cdm_share *sh, const char *key);
/* The NAME.a tensor (for its shape), or NULL if NAME is not a secret here. */
const struct cdm_st_tensor *cdm_share_find(const cdm_share *sh, const char *name);
/* Components of secret `name`, checking its shape (ndim dims). Pointers are
 * 8-byte aligned and live as long as sh. A stored component is borrowed
 * from the mapping when aligned; a seeded one is expanded here (8 bytes an
 * element, once: later calls return the same buffer; held until close). The
 * NAME.a tensor of cdm_share_find may be an index entry without data. */
int cdm_share_get(cdm_share *sh, const char *name, int ndim, const int64_t *shape,
		  const uint64_t **a, const uint64_t **b, struct cdm_err *err);

/* Check that 2 or 3 open files form one sharing: same sharing_id, kind,
 * ring_bits, frac_bits and secret tensors (names and shapes), distinct
 * parties. "out.0 and out.1 belong to different sharings", "out.1 given
 * twice". */
int cdm_share_check_set(cdm_share *const *sh, size_t n, struct cdm_err *err);
/* x = x_0 + x_1 + x_2 of secret `name` from a checked set (2 or 3 files):
 * out holds numel values (cdm_alloc'ed). With 3 files the redundant copies
 * must agree, otherwise CDM_EINPUT ("... disagree on ..."). */
int cdm_share_reconstruct(cdm_share *const *sh, size_t n, const char *name, uint64_t **out,
			  struct cdm_err *err);

/* Component of secret `name` from a component seed (format 2): n ring
 * elements of AES-128-CTR keyed by HMAC-SHA256(seed, name). */
int cdm_share_seed_expand(const uint8_t seed[16], const char *name, uint64_t *out, size_t n,
			  struct cdm_err *err);

/* A fresh random sharing id (32 hex digits + NUL). */
int cdm_share_new_id(char id[CDM_SHARE_ID_LEN + 1], struct cdm_err *err);

/* ---- writing ------------------------------------------------------------ */
typedef struct cdm_share_writer cdm_share_writer;

/* kind is "model", "input", ...; sharing_id must be 32 hex digits. */
int cdm_share_writer_new(cdm_share_writer **out, int party, int frac_bits,
			 const char *sharing_id, const char *kind, struct cdm_err *err);
void cdm_share_writer_free(cdm_share_writer *w);
/* Seeded components (format 2): seed_a / seed_b (16 bytes, or NULL for a
 * stored component) before any _add. Only the seeds of this party's own
 * two components may be given (the caller's duty). */
int cdm_share_writer_seeds(cdm_share_writer *w, const uint8_t *seed_a, const uint8_t *seed_b,
			   struct cdm_err *err);
/* Add secret `name` with this party's components a = x_i, b = x_{i+1}
 * (copied; a seeded component is not stored and may be NULL). */
int cdm_share_writer_add(cdm_share_writer *w, const char *name, int ndim, const int64_t *shape,
			 const uint64_t *a, const uint64_t *b, struct cdm_err *err);
/* Extra metadata ("config", "scheduler_config", free-form). The keys set by
 * _new (format, party, ring_bits, frac_bits, sharing_id, kind) are refused. */
int cdm_share_writer_meta(cdm_share_writer *w, const char *key, const char *value,
			  struct cdm_err *err);
/* Validate (model shares need "config") and save atomically with mode 0600. */
int cdm_share_writer_save(cdm_share_writer *w, const char *path, int zstd_level,
			  struct cdm_err *err);

#endif
