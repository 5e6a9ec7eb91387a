/*
 * fmt/st: safetensors files -- reading with every validation rule of the
 * format, writing with 8-byte alignment, transparent zstd, atomic output.
 *
 * Owns: the safetensors container (header JSON, dtypes, offsets), the
 * `__metadata__` string map, zstd detection, and the write-to-temp-then-
 * rename rule for outputs. Does not own: what the tensors mean.
 *
 * Reading validates (each violation is one CDM_EINPUT message naming the
 * file and the problem): file >= 8 bytes; header length N <= 100,000,000 and
 * 8 + N <= file size; header is a JSON object (leading/trailing whitespace
 * allowed); entries have a known dtype, a shape of non-negative integers
 * whose product (times the dtype size) does not overflow, and data_offsets
 * [begin, end] with end - begin == bytes of the shape; sorted by offset the
 * entries are contiguous from 0 with no holes or overlaps and the last end
 * is exactly the buffer size; no duplicate names; `__metadata__` maps
 * strings to strings. A zstd-compressed file (magic 28 B5 2F FD) is
 * decompressed first (bounded by CDM_ST_MAX_BYTES). Plain files are mmap'ed.
 *
 * Details (lib/fmt/st.c, lib/fmt/io.h): the header JSON may nest at most 8
 * deep (a valid one nests 3) and is parsed by jansson with duplicate keys
 * rejected; dtypes other than the nine below are refused as unsupported.
 * Entries may appear in any JSON order (as in the reference reader); only
 * their offsets must tile the data. zstd output is also capped by physical
 * memory and grows only as data is produced (io.h). A mapped file must not
 * be truncated by someone else while open (SIGBUS); stdin, pipes and zstd
 * files are read into memory instead. Tensor data of a file written by
 * cdm_st_writer_save is aligned to its element size.
 *
 * Writing sorts tensors like the reference writer (larger element size
 * first, then by name), pads the header with spaces so the data starts at a
 * multiple of 8, and writes `__metadata__` only when there is some.
 * Thread-safety: an open cdm_st is immutable and may be read from several
 * threads; a writer belongs to one thread.
 */
#ifndef CDM_FMT_ST_H
#define CDM_FMT_ST_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_ST_MAX_HEADER 100000000ULL
#define CDM_ST_MAX_BYTES ((uint64_t)64 << 30)
#define CDM_ST_MAX_DIMS 8

enum cdm_dtype {
	CDM_F32, CDM_F16, CDM_BF16, CDM_F64, CDM_U64, CDM_I64, CDM_I32, CDM_U8, CDM_BOOL,
	CDM_DTYPE_COUNT
};

struct cdm_st_tensor {
	char *name;
	enum cdm_dtype dtype;
	int ndim;
	int64_t shape[CDM_ST_MAX_DIMS];
	uint64_t numel;
	const uint8_t *data; /* inside the mapping; may be unaligned */
	uint64_t nbytes;
};

typedef struct cdm_st cdm_st; /* an open, validated file */

/* path "-" reads stdin. */
int cdm_st_open(cdm_st **out, const char *path, struct cdm_err *err);
/* Parse from memory (the buffer is copied). `what` names it in messages. */
int cdm_st_open_mem(cdm_st **out, const void *buf, size_t len, const char *what,
		    struct cdm_err *err);
void cdm_st_close(cdm_st *st);

const char *cdm_st_path(const cdm_st *st);
size_t cdm_st_count(const cdm_st *st);
const struct cdm_st_tensor *cdm_st_at(const cdm_st *st, size_t i); /* sorted by name */
const struct cdm_st_tensor *cdm_st_find(const cdm_st *st, const char *name); /* NULL if absent */
/* Value of a `__metadata__` key, or NULL. */
const char *cdm_st_meta(const cdm_st *st, const char *key);
/* All `__metadata__` entries, sorted by key: 0, or -1 if i is out of range. */
size_t cdm_st_meta_count(const cdm_st *st);
int cdm_st_meta_at(const cdm_st *st, size_t i, const char **key, const char **value);

/* Convert a tensor (F32/F16/BF16/F64) to float32; `out` holds numel floats.
 * Fails for non-float dtypes. */
int cdm_st_to_f32(const cdm_st *st, const struct cdm_st_tensor *t, float *out,
		  struct cdm_err *err);
/* Find `name` and check its shape equals `shape` (ndim dims), without
 * reading data: "<file>: no tensor 'n'" or "<file>: tensor 'n': shape
 * [..], expected [..]". */
int cdm_st_find_shaped(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		       const struct cdm_st_tensor **out, struct cdm_err *err);
/* Find `name`, check its shape equals `shape` (ndim dims), convert to F32
 * into a new cdm_alloc'ed buffer. Messages name file, tensor and shapes. */
int cdm_st_load_f32(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		    float **out, struct cdm_err *err);
/* Same for U64 tensors (share files): returns a borrowed pointer when
 * aligned, else a copy (*owned set to 1). */
int cdm_st_load_u64(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		    const uint64_t **out, int *owned, struct cdm_err *err);

/* ---- writing ------------------------------------------------------------ */
typedef struct cdm_st_writer cdm_st_writer;

int cdm_st_writer_new(cdm_st_writer **out, struct cdm_err *err);
void cdm_st_writer_free(cdm_st_writer *w);
/* Data is copied. Names must be unique. */
int cdm_st_writer_add(cdm_st_writer *w, const char *name, enum cdm_dtype dtype, int ndim,
		      const int64_t *shape, const void *data, struct cdm_err *err);
int cdm_st_writer_meta(cdm_st_writer *w, const char *key, const char *value,
		       struct cdm_err *err);
/* Write to path ("-" = stdout) atomically: a temporary file in the same
 * directory, fsync, chmod `mode`, rename. `zstd_level` > 0 compresses.
 * On failure nothing is left under `path` and an existing file is
 * untouched. */
int cdm_st_writer_save(cdm_st_writer *w, const char *path, unsigned mode, int zstd_level,
		       struct cdm_err *err);

const char *cdm_dtype_name(enum cdm_dtype t);
size_t cdm_dtype_size(enum cdm_dtype t);
/* "[4,1,3,3]" into buf of cap bytes for error messages (always
 * terminated, cut short when too small); returns buf. */
const char *cdm_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
/* Exact conversions: IEEE half (subnormals, inf, nan) and bfloat16. */
float cdm_f16_to_f32(uint16_t h);
float cdm_bf16_to_f32(uint16_t b);

/* ---- whole files, shared helpers ---------------------------------------- */
/* Read a whole file (or stdin for "-") into memory, decompressing zstd;
 * at most `limit` bytes after decompression. */
int cdm_read_file(const char *path, uint64_t limit, uint8_t **out, size_t *len,
		  struct cdm_err *err);
/* Atomic write of a buffer (temp + fsync + rename; "-" = stdout). */
int cdm_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode,
			  struct cdm_err *err);

#endif
