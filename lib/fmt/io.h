/*
 * fmt/io: whole-file input with transparent zstd, and atomic output sinks.
 *
 * Owns: reading a file, stdin or pipe into memory (bounded), detecting and
 * decompressing zstd (magic 28 B5 2F FD), and the output rule "write a
 * temporary file in the same directory, fsync, fchmod, rename; unlink the
 * temporary on any failure". Does not own: what the bytes mean.
 *
 * Bounds. A read never holds more than `limit` bytes of (decompressed)
 * content. zstd output is additionally capped by the machine's physical
 * memory, and the output buffer only grows as real data is produced (it
 * starts at min(declared size, 8 x compressed size + 64 KiB) and doubles),
 * so a frame header that lies about its size, or a decompression bomb, costs
 * at most about twice the bytes it actually expands to -- and never more
 * than the limit. Raw input (before decompression) is capped at
 * limit + limit/128 + 1 MiB, the zstd worst-case expansion for
 * incompressible data.
 *
 * Temporary files are named "<dir>/.<name>.XXXXXX" (mkstemp). "-" as a path
 * means stdout (no temporary, no rename, no fsync) or stdin.
 *
 * Buffers returned here are released with cdm_free. Thread-safety: none
 * needed; no globals (a sink is used by one thread at a time).
 */
#ifndef CDM_FMT_IO_H
#define CDM_FMT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

/* True when buf starts with the zstd frame magic. */
int cdm_is_zstd(const void *buf, size_t len);

/* Decompress one or more zstd frames from src into a new buffer (at most
 * `limit` bytes; see the bounds above). `what` names the input in messages. */
int cdm_zstd_decompress(const void *src, size_t srclen, uint64_t limit, const char *what,
			uint8_t **out, size_t *outlen, struct cdm_err *err);

/* Read everything from an open descriptor (at most `limit` bytes; more is an
 * error naming `what`). No decompression. */
int cdm_read_fd(int fd, uint64_t limit, const char *what, uint8_t **out, size_t *len,
		struct cdm_err *err);

/* ---- atomic output ------------------------------------------------------ */
typedef struct cdm_sink cdm_sink;

/* Start writing `path` ("-" = stdout). zstd_level > 0 compresses; pledged is
 * the total number of bytes that will be written (recorded in the zstd frame
 * header), or UINT64_MAX if unknown. */
int cdm_sink_open(cdm_sink **out, const char *path, int zstd_level, uint64_t pledged,
		  struct cdm_err *err);
int cdm_sink_write(cdm_sink *s, const void *buf, size_t len, struct cdm_err *err);
/* Finish: flush, fsync, fchmod(mode), rename over `path`. Frees the sink in
 * all cases; on failure the temporary is removed and `path` is untouched. */
int cdm_sink_commit(cdm_sink *s, unsigned mode, struct cdm_err *err);
/* Give up: remove the temporary, free the sink. Accepts NULL. */
void cdm_sink_abort(cdm_sink *s);

#endif
