/*
 * base: status codes, error messages, checked allocation.
 *
 * Owns: struct cdm_err and the CDM_E* codes every other module returns.
 * Does not own: printing or exiting -- the library never prints and never
 * exits; tools in cmd/ turn an error into one stderr line and an exit code.
 *
 * Convention: a library function returns 0 (CDM_OK) or a negative CDM_E*
 * code and, on failure, fills the caller-owned `struct cdm_err` with a
 * message that names the object and the cause, e.g.
 *   model.1: tensor 'conv_in.weight': shape [32,4,3,3], expected [32,3,3,3]
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_BASE_H
#define CDM_BASE_H

#include <stddef.h>
#include <stdint.h>

enum {
	CDM_OK = 0,
	CDM_EINPUT = -1,    /* bad usage, bad file, bad value: exit 1 */
	CDM_EIO = -2,       /* a file could not be read or written: exit 1 */
	CDM_ENOMEM = -3,    /* allocation failed or a size is absurd: exit 1 */
	CDM_ENET = -4,      /* network failure, peer died or timed out: exit 2 */
	CDM_EPROTO = -5,    /* peer sent something unexpected: exit 2 */
	CDM_EINTERNAL = -6, /* a bug: exit 2 */
};

struct cdm_err {
	int code;       /* last CDM_E* code, 0 if none */
	char msg[256];  /* one line, no trailing newline */
};

/* Fill err (may be NULL) and return code: `return cdm_fail(err, CDM_EINPUT, ...)`. */
int cdm_fail(struct cdm_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context: "model.1: " + old message. */
int cdm_err_prefix(struct cdm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Exit status a tool uses for a code: 0, 1 (input) or 2 (protocol/network). */
int cdm_exit_status(int code);

const char *cdm_strerror(int code);

/* Propagate a negative status (zstd's FORWARD_IF_ERROR). */
#define CDM_TRY(expr)                                                         \
	do {                                                                  \
		int cdm_rc_ = (expr);                                         \
		if (cdm_rc_ < 0)                                              \
			return cdm_rc_;                                       \
	} while (0)

/* Allocation that refuses absurd sizes and overflowing products. Return
 * NULL and fill err on failure. Memory from cdm_alloc is 64-byte aligned
 * and released with cdm_free (which accepts NULL). */
void *cdm_alloc(size_t count, size_t size, struct cdm_err *err);
void *cdm_zalloc(size_t count, size_t size, struct cdm_err *err);
void cdm_free(void *p);

/* Largest single allocation the library will attempt (refuse 2^60 claims). */
#define CDM_ALLOC_MAX ((size_t)1 << 40)

/* a*b without overflow; returns 0 and sets *out, or -1 on overflow. */
int cdm_mul_size(size_t a, size_t b, size_t *out);

/* Monotonic clock in seconds. */
double cdm_now(void);

/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t cdm_peak_rss(void);

#endif
