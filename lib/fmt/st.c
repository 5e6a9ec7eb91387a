/* fmt/st: safetensors reading (validated) and writing (atomic); see st.h. */
#define _GNU_SOURCE
#include "st.h"
#include "io.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

/* The header of a valid file nests 3 deep (object, entry, array). */
#define ST_MAX_DEPTH 8

struct st_meta {
	char *key, *val;
};

struct cdm_st {
	char *path;                  /* name used in messages */
	const uint8_t *base;         /* whole file contents */
	size_t size;                 /* bytes at base */
	void *map;                   /* mmap'ed region (== base) or NULL */
	uint8_t *mem;                /* malloc'ed contents (== base) or NULL */
	struct cdm_st_tensor *t;     /* [n], sorted by name */
	size_t n;
	struct st_meta *meta;        /* [nmeta], sorted by key */
	size_t nmeta;
};

static const struct {
	const char *name;
	size_t size;
} dtypes[CDM_DTYPE_COUNT] = {
	[CDM_F32] = {"F32", 4},   [CDM_F16] = {"F16", 2}, [CDM_BF16] = {"BF16", 2},
	[CDM_F64] = {"F64", 8},   [CDM_U64] = {"U64", 8}, [CDM_I64] = {"I64", 8},
	[CDM_I32] = {"I32", 4},   [CDM_U8] = {"U8", 1},   [CDM_BOOL] = {"BOOL", 1},
};

const char *cdm_dtype_name(enum cdm_dtype t)
{
	return (unsigned)t < CDM_DTYPE_COUNT ? dtypes[t].name : "?";
}

size_t cdm_dtype_size(enum cdm_dtype t)
{
	return (unsigned)t < CDM_DTYPE_COUNT ? dtypes[t].size : 0;
}

const char *cdm_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
	size_t k = (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < ndim && k < cap; i++)
		k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)shape[i]);
	if (k < cap)
		snprintf(buf + k, cap - k, "]");
	return buf;
}

/* ---- parsing ------------------------------------------------------------ */

/* Per-entry offsets, kept while validating contiguity. */
struct span {
	uint64_t begin, end;
	size_t idx;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int tensor_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cdm_st_tensor *)a)->name,
		      ((const struct cdm_st_tensor *)b)->name);
}

static int meta_cmp(const void *a, const void *b)
{
	return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

/* A JSON integer in [0, 2^63). */
static int get_uint(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_dtype(const char *what, const char *name, const json_t *v,
		       enum cdm_dtype *out, struct cdm_err *err)
{
	if (!json_is_string(v))
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': 'dtype' missing or not a string",
				what, name);
	const char *s = json_string_value(v);
	for (int i = 0; i < CDM_DTYPE_COUNT; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (enum cdm_dtype)i;
			return 0;
		}
	return cdm_fail(err, CDM_EINPUT,
			"%s: tensor '%.80s': unsupported dtype '%.20s' (known: F32 F16 BF16 F64 "
			"U64 I64 I32 U8 BOOL)", what, name, s);
}

static int parse_shape(const char *what, const char *name, const json_t *v,
		       struct cdm_st_tensor *t, struct cdm_err *err)
{
	if (!json_is_array(v))
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': 'shape' missing or not an array",
				what, name);
	size_t nd = json_array_size(v);
	if (nd > CDM_ST_MAX_DIMS)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': shape has %zu dimensions, at most %d supported",
				what, name, nd, CDM_ST_MAX_DIMS);
	uint64_t numel = 1;
	int overflow = 0;
	for (size_t i = 0; i < nd; i++) {
		uint64_t d;
		if (get_uint(json_array_get(v, i), &d) < 0)
			return cdm_fail(err, CDM_EINPUT,
					"%s: tensor '%.80s': shape[%zu] is not a non-negative integer",
					what, name, i);
		t->shape[i] = (int64_t)d;
		if (d && numel > UINT64_MAX / d)
			overflow = 1;
		numel *= d;
	}
	t->ndim = (int)nd;
	char sb[160];
	if (overflow || numel > UINT64_MAX / dtypes[t->dtype].size)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': shape %s: element count overflows",
				what, name, cdm_st_shape_str(sb, sizeof sb, t->ndim, t->shape));
	t->numel = numel;
	t->nbytes = numel * dtypes[t->dtype].size;
	return 0;
}

static int parse_entry(const char *what, const char *name, const json_t *v,
		       struct cdm_st_tensor *t, struct span *sp, uint64_t datalen,
		       struct cdm_err *err)
{
	if (!json_is_object(v))
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': entry is not an object", what, name);
	CDM_TRY(parse_dtype(what, name, json_object_get(v, "dtype"), &t->dtype, err));
	CDM_TRY(parse_shape(what, name, json_object_get(v, "shape"), t, err));
	const json_t *off = json_object_get(v, "data_offsets");
	if (!json_is_array(off) || json_array_size(off) != 2 ||
	    get_uint(json_array_get(off, 0), &sp->begin) < 0 ||
	    get_uint(json_array_get(off, 1), &sp->end) < 0)
		return cdm_fail(err, CDM_EINPUT,
				"%s: tensor '%.80s': 'data_offsets' must be [begin, end] with "
				"non-negative integers", what, name);
	if (sp->end < sp->begin)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': data_offsets [%llu,%llu] end before they begin",
				what, name, (unsigned long long)sp->begin, (unsigned long long)sp->end);
	char sb[160];
	if (sp->end - sp->begin != t->nbytes)
		return cdm_fail(err, CDM_EINPUT,
				"%s: tensor '%.80s': data_offsets [%llu,%llu] hold %llu bytes, shape %s %s needs %llu",
				what, name, (unsigned long long)sp->begin, (unsigned long long)sp->end,
				(unsigned long long)(sp->end - sp->begin),
				cdm_st_shape_str(sb, sizeof sb, t->ndim, t->shape), dtypes[t->dtype].name,
				(unsigned long long)t->nbytes);
	if (sp->end > datalen)
		return cdm_fail(err, CDM_EINPUT,
				"%s: tensor '%.80s': data_offsets [%llu,%llu] extend beyond the data (%llu bytes)",
				what, name, (unsigned long long)sp->begin, (unsigned long long)sp->end,
				(unsigned long long)datalen);
	return 0;
}

static int parse_meta(cdm_st *st, const json_t *m, struct cdm_err *err)
{
	if (!json_is_object(m))
		return cdm_fail(err, CDM_EINPUT, "%s: __metadata__ is not an object", st->path);
	size_t n = json_object_size(m);
	st->meta = calloc(n ? n : 1, sizeof *st->meta);
	if (!st->meta)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", st->path);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)m, k, v) {
		if (!json_is_string(v))
			return cdm_fail(err, CDM_EINPUT, "%s: __metadata__ value of '%.80s' is not a string",
					st->path, k);
		struct st_meta *e = &st->meta[st->nmeta];
		e->key = strdup(k);
		e->val = strdup(json_string_value(v));
		st->nmeta++;
		if (!e->key || !e->val)
			return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", st->path);
	}
	qsort(st->meta, st->nmeta, sizeof *st->meta, meta_cmp);
	return 0;
}

/* Sorted by offset, entries must tile [0, datalen) exactly. */
static int check_layout(const cdm_st *st, struct span *sp, size_t n, uint64_t datalen,
			struct cdm_err *err)
{
	qsort(sp, n, sizeof *sp, span_cmp);
	uint64_t pos = 0;
	const char *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *name = st->t[sp[i].idx].name;
		if (sp[i].begin < pos)
			return cdm_fail(err, CDM_EINPUT,
					"%s: tensors '%.60s' and '%.60s' overlap (data_offsets begin %llu < %llu)",
					st->path, prev, name, (unsigned long long)sp[i].begin,
					(unsigned long long)pos);
		if (sp[i].begin > pos)
			return cdm_fail(err, CDM_EINPUT,
					"%s: hole in the data: bytes [%llu,%llu) belong to no tensor (before '%.80s')",
					st->path, (unsigned long long)pos, (unsigned long long)sp[i].begin, name);
		pos = sp[i].end;
		prev = name;
	}
	if (pos != datalen)
		return cdm_fail(err, CDM_EINPUT,
				"%s: tensors end at data offset %llu but the data is %llu bytes",
				st->path, (unsigned long long)pos, (unsigned long long)datalen);
	return 0;
}

static int parse_tensors(cdm_st *st, const json_t *root, const uint8_t *data, uint64_t datalen,
			 struct cdm_err *err)
{
	size_t cap = json_object_size(root);
	st->t = calloc(cap ? cap : 1, sizeof *st->t);
	struct span *sp = calloc(cap ? cap : 1, sizeof *sp);
	if (!st->t || !sp) {
		free(sp);
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", st->path);
	}
	int rc = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)root, k, v) {
		if (strcmp(k, "__metadata__") == 0) {
			rc = parse_meta(st, v, err);
		} else {
			struct cdm_st_tensor *t = &st->t[st->n];
			rc = parse_entry(st->path, k, v, t, &sp[st->n], datalen, err);
			if (rc == 0 && !(t->name = strdup(k)))
				rc = cdm_fail(err, CDM_ENOMEM, "%s: out of memory", st->path);
			if (rc == 0) {
				sp[st->n].idx = st->n;
				t->data = data + sp[st->n].begin;
				st->n++;
			}
		}
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = check_layout(st, sp, st->n, datalen, err);
	free(sp);
	if (rc == 0)
		qsort(st->t, st->n, sizeof *st->t, tensor_cmp);
	return rc;
}

static int is_json_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Validate st->base/size and build the tensor table. */
static int st_parse(cdm_st *st, struct cdm_err *err)
{
	const uint8_t *p = st->base;
	if (st->size < 8)
		return cdm_fail(err, CDM_EINPUT,
				"%s: %zu bytes, too short for a safetensors file (8-byte header length)",
				st->path, st->size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | p[i];
	if (n > st->size - 8)
		return cdm_fail(err, CDM_EINPUT, "%s: header length %llu exceeds the file (%zu bytes)",
				st->path, (unsigned long long)n, st->size);
	if (n > CDM_ST_MAX_HEADER)
		return cdm_fail(err, CDM_EINPUT, "%s: header length %llu exceeds the limit of %llu bytes",
				st->path, (unsigned long long)n, (unsigned long long)CDM_ST_MAX_HEADER);
	const char *h = (const char *)p + 8;
	size_t hl = (size_t)n, lead = 0;
	while (lead < hl && is_json_space((uint8_t)h[lead]))
		lead++;
	if (lead == hl || h[lead] != '{')
		return cdm_fail(err, CDM_EINPUT, "%s: header is not a JSON object", st->path);
	if (cdm_json_depth(h, hl, ST_MAX_DEPTH) > ST_MAX_DEPTH)
		return cdm_fail(err, CDM_EINPUT, "%s: header JSON nested deeper than %d levels",
				st->path, ST_MAX_DEPTH);
	json_error_t je;
	json_t *root = json_loadb(h, hl, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (json_error_code(&je) == json_error_duplicate_key)
			return cdm_fail(err, CDM_EINPUT,
					"%s: header: duplicate tensor name (column %d): %s",
					st->path, je.column, je.text);
		return cdm_fail(err, CDM_EINPUT, "%s: header is not valid JSON: column %d: %s",
				st->path, je.column, je.text);
	}
	int rc = 0;
	if (!json_is_object(root))
		rc = cdm_fail(err, CDM_EINPUT, "%s: header is not a JSON object", st->path);
	else
		rc = parse_tensors(st, root, p + 8 + n, st->size - 8 - n, err);
	json_decref(root);
	return rc;
}

/* ---- opening -------------------------------------------------------------- */

static cdm_st *st_new(const char *what, struct cdm_err *err)
{
	cdm_st *st = calloc(1, sizeof *st);
	if (st && !(st->path = strdup(what))) {
		free(st);
		st = NULL;
	}
	if (!st)
		cdm_fail(err, CDM_ENOMEM, "%s: out of memory", what);
	return st;
}

/* Take ownership of a malloc'ed buffer, decompressing it if needed. */
static int st_adopt(cdm_st *st, uint8_t *buf, size_t len, struct cdm_err *err)
{
	if (cdm_is_zstd(buf, len)) {
		uint8_t *dec;
		size_t dn;
		int rc = cdm_zstd_decompress(buf, len, CDM_ST_MAX_BYTES, st->path, &dec, &dn, err);
		free(buf);
		if (rc < 0)
			return rc;
		buf = dec;
		len = dn;
	}
	st->mem = buf;
	st->base = buf;
	st->size = len;
	return 0;
}

static int st_finish(cdm_st **out, cdm_st *st, int rc, struct cdm_err *err)
{
	if (rc == 0)
		rc = st_parse(st, err);
	if (rc < 0) {
		cdm_st_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

int cdm_st_open_mem(cdm_st **out, const void *buf, size_t len, const char *what,
		    struct cdm_err *err)
{
	*out = NULL;
	cdm_st *st = st_new(what ? what : "(memory)", err);
	if (!st)
		return CDM_ENOMEM;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) {
		cdm_st_close(st);
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", what);
	}
	if (len)
		memcpy(copy, buf, len);
	return st_finish(out, st, st_adopt(st, copy, len, err), err);
}

/* Regular uncompressed files are mapped; returns 1 if it did so. */
static int try_mmap(cdm_st *st, int fd, struct cdm_err *err)
{
	struct stat sb;
	uint8_t magic[4];
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < 8)
		return 0;
	if ((uint64_t)sb.st_size > CDM_ST_MAX_BYTES || (uint64_t)sb.st_size > SIZE_MAX)
		return cdm_fail(err, CDM_EINPUT, "%s: %lld bytes exceeds the limit of %llu bytes",
				st->path, (long long)sb.st_size, (unsigned long long)CDM_ST_MAX_BYTES);
	if (pread(fd, magic, 4, 0) != 4 || cdm_is_zstd(magic, 4))
		return 0;
	void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 0; /* fall back to read() */
	st->map = m;
	st->base = m;
	st->size = (size_t)sb.st_size;
	return 1;
}

int cdm_st_open(cdm_st **out, const char *path, struct cdm_err *err)
{
	*out = NULL;
	int is_stdin = strcmp(path, "-") == 0;
	cdm_st *st = st_new(is_stdin ? "stdin" : path, err);
	if (!st)
		return CDM_ENOMEM;
	int fd = 0;
	if (!is_stdin && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		int e = errno;
		cdm_st_close(st);
		return cdm_fail(err, e == ENOENT || e == EACCES || e == ENOTDIR ? CDM_EINPUT : CDM_EIO,
				"%s: cannot open: %s", path, strerror(e));
	}
	int rc = try_mmap(st, fd, err);
	if (rc == 0) {
		uint8_t *buf;
		size_t len;
		/* + zstd worst-case expansion; the decompressed size is checked too */
		uint64_t lim = CDM_ST_MAX_BYTES + CDM_ST_MAX_BYTES / 128 + (1u << 20);
		rc = cdm_read_fd(fd, lim, st->path, &buf, &len, err);
		if (rc == 0)
			rc = st_adopt(st, buf, len, err);
		if (rc == 0 && st->size > CDM_ST_MAX_BYTES)
			rc = cdm_fail(err, CDM_EINPUT, "%s: larger than the limit of %llu bytes",
				      st->path, (unsigned long long)CDM_ST_MAX_BYTES);
	}
	if (!is_stdin)
		close(fd);
	return st_finish(out, st, rc < 0 ? rc : 0, err);
}

void cdm_st_close(cdm_st *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		free(st->t[i].name);
	free(st->t);
	for (size_t i = 0; i < st->nmeta; i++) {
		free(st->meta[i].key);
		free(st->meta[i].val);
	}
	free(st->meta);
	if (st->map)
		munmap(st->map, st->size);
	free(st->mem);
	free(st->path);
	free(st);
}

/* ---- access --------------------------------------------------------------- */

const char *cdm_st_path(const cdm_st *st)
{
	return st->path;
}

size_t cdm_st_count(const cdm_st *st)
{
	return st->n;
}

const struct cdm_st_tensor *cdm_st_at(const cdm_st *st, size_t i)
{
	return i < st->n ? &st->t[i] : NULL;
}

const struct cdm_st_tensor *cdm_st_find(const cdm_st *st, const char *name)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, st->t[mid].name);
		if (c == 0)
			return &st->t[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *cdm_st_meta(const cdm_st *st, const char *key)
{
	for (size_t lo = 0, hi = st->nmeta; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, st->meta[mid].key);
		if (c == 0)
			return st->meta[mid].val;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t cdm_st_meta_count(const cdm_st *st)
{
	return st->nmeta;
}

int cdm_st_meta_at(const cdm_st *st, size_t i, const char **key, const char **value)
{
	if (i >= st->nmeta)
		return -1;
	*key = st->meta[i].key;
	*value = st->meta[i].val;
	return 0;
}

/* ---- conversion ----------------------------------------------------------- */

float cdm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	if (e == 0x1f) {
		bits = sign | 0x7f800000u | m << 13; /* inf, nan (payload kept) */
	} else if (e) {
		bits = sign | (e + 112) << 23 | m << 13; /* rebias 15 -> 127 */
	} else {
		/* zero or subnormal: m * 2^-24 exactly */
		float f = ldexpf((float)m, -24);
		return sign ? -f : f;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

float cdm_bf16_to_f32(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

int cdm_st_to_f32(const cdm_st *st, const struct cdm_st_tensor *t, float *out,
		  struct cdm_err *err)
{
	const uint8_t *d = t->data;
	switch (t->dtype) {
	case CDM_F32:
		memcpy(out, d, t->nbytes);
		return 0;
	case CDM_F16:
	case CDM_BF16:
		for (uint64_t i = 0; i < t->numel; i++) {
			uint16_t h;
			memcpy(&h, d + 2 * i, 2);
			out[i] = t->dtype == CDM_F16 ? cdm_f16_to_f32(h) : cdm_bf16_to_f32(h);
		}
		return 0;
	case CDM_F64:
		for (uint64_t i = 0; i < t->numel; i++) {
			double v;
			memcpy(&v, d + 8 * i, 8);
			out[i] = (float)v;
		}
		return 0;
	default:
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': dtype %s is not a float type",
				st->path, t->name, cdm_dtype_name(t->dtype));
	}
}

int cdm_st_find_shaped(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		       const struct cdm_st_tensor **out, struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_st_find(st, name);
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no tensor '%.80s'", st->path, name);
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char a[100], b[100];
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': shape %s, expected %s", st->path,
				name, cdm_st_shape_str(a, sizeof a, t->ndim, t->shape),
				cdm_st_shape_str(b, sizeof b, ndim, shape));
	}
	*out = t;
	return 0;
}

int cdm_st_load_f32(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		    float **out, struct cdm_err *err)
{
	const struct cdm_st_tensor *t;
	*out = NULL;
	CDM_TRY(cdm_st_find_shaped(st, name, ndim, shape, &t, err));
	float *buf = cdm_alloc(t->numel, sizeof *buf, err);
	if (!buf)
		return cdm_err_prefix(err, "%s: tensor '%.80s': ", st->path, name);
	int rc = cdm_st_to_f32(st, t, buf, err);
	if (rc < 0) {
		cdm_free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

int cdm_st_load_u64(const cdm_st *st, const char *name, int ndim, const int64_t *shape,
		    const uint64_t **out, int *owned, struct cdm_err *err)
{
	const struct cdm_st_tensor *t;
	*out = NULL;
	*owned = 0;
	CDM_TRY(cdm_st_find_shaped(st, name, ndim, shape, &t, err));
	if (t->dtype != CDM_U64)
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': dtype %s, expected U64",
				st->path, name, cdm_dtype_name(t->dtype));
	if (((uintptr_t)t->data & 7) == 0) {
		*out = (const uint64_t *)(const void *)t->data;
		return 0;
	}
	uint64_t *copy = cdm_alloc(t->numel, 8, err);
	if (!copy)
		return cdm_err_prefix(err, "%s: tensor '%.80s': ", st->path, name);
	memcpy(copy, t->data, t->nbytes);
	*out = copy;
	*owned = 1;
	return 0;
}

/* ---- writing -------------------------------------------------------------- */

struct w_tensor {
	char *name;
	enum cdm_dtype dtype;
	int ndim;
	int64_t shape[CDM_ST_MAX_DIMS];
	uint8_t *data;
	uint64_t nbytes;
};

struct cdm_st_writer {
	struct w_tensor *t;
	size_t n, cap;
	struct st_meta *meta;
	size_t nmeta, mcap;
};

int cdm_st_writer_new(cdm_st_writer **out, struct cdm_err *err)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : cdm_fail(err, CDM_ENOMEM, "safetensors writer: out of memory");
}

void cdm_st_writer_free(cdm_st_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		free(w->t[i].name);
		free(w->t[i].data);
	}
	for (size_t i = 0; i < w->nmeta; i++) {
		free(w->meta[i].key);
		free(w->meta[i].val);
	}
	free(w->t);
	free(w->meta);
	free(w);
}

static int valid_utf8(const char *s)
{
	json_t *j = json_string(s);
	json_decref(j);
	return j != NULL;
}

int cdm_st_writer_add(cdm_st_writer *w, const char *name, enum cdm_dtype dtype, int ndim,
		      const int64_t *shape, const void *data, struct cdm_err *err)
{
	if ((unsigned)dtype >= CDM_DTYPE_COUNT)
		return cdm_fail(err, CDM_EINPUT, "tensor '%.80s': invalid dtype %d", name, (int)dtype);
	if (ndim < 0 || ndim > CDM_ST_MAX_DIMS)
		return cdm_fail(err, CDM_EINPUT, "tensor '%.80s': %d dimensions (0..%d allowed)", name,
				ndim, CDM_ST_MAX_DIMS);
	if (strcmp(name, "__metadata__") == 0 || !valid_utf8(name))
		return cdm_fail(err, CDM_EINPUT, "tensor name '%.80s' is reserved or not UTF-8", name);
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return cdm_fail(err, CDM_EINPUT, "tensor '%.80s' added twice", name);
	uint64_t numel = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || (shape[i] && numel > UINT64_MAX / (uint64_t)shape[i]))
			return cdm_fail(err, CDM_EINPUT, "tensor '%.80s': invalid shape", name);
		numel *= (uint64_t)shape[i];
	}
	size_t nbytes;
	if (numel > SIZE_MAX || cdm_mul_size((size_t)numel, dtypes[dtype].size, &nbytes) ||
	    nbytes > CDM_ST_MAX_BYTES)
		return cdm_fail(err, CDM_EINPUT, "tensor '%.80s': too large", name);
	if (w->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 16;
		struct w_tensor *nt = realloc(w->t, nc * sizeof *nt);
		if (!nt)
			return cdm_fail(err, CDM_ENOMEM, "tensor '%.80s': out of memory", name);
		w->t = nt;
		w->cap = nc;
	}
	struct w_tensor *t = &w->t[w->n];
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	t->data = malloc(nbytes ? nbytes : 1);
	if (!t->name || !t->data) {
		free(t->name);
		free(t->data);
		return cdm_fail(err, CDM_ENOMEM, "tensor '%.80s': out of memory", name);
	}
	if (nbytes)
		memcpy(t->data, data, nbytes);
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->nbytes = nbytes;
	w->n++;
	return 0;
}

int cdm_st_writer_meta(cdm_st_writer *w, const char *key, const char *value,
		       struct cdm_err *err)
{
	if (!valid_utf8(key) || !valid_utf8(value))
		return cdm_fail(err, CDM_EINPUT, "metadata '%.80s': key or value is not UTF-8", key);
	for (size_t i = 0; i < w->nmeta; i++)
		if (strcmp(w->meta[i].key, key) == 0) { /* replace */
			char *v = strdup(value);
			if (!v)
				return cdm_fail(err, CDM_ENOMEM, "metadata: out of memory");
			free(w->meta[i].val);
			w->meta[i].val = v;
			return 0;
		}
	if (w->nmeta == w->mcap) {
		size_t nc = w->mcap ? 2 * w->mcap : 8;
		struct st_meta *nm = realloc(w->meta, nc * sizeof *nm);
		if (!nm)
			return cdm_fail(err, CDM_ENOMEM, "metadata: out of memory");
		w->meta = nm;
		w->mcap = nc;
	}
	struct st_meta *m = &w->meta[w->nmeta];
	m->key = strdup(key);
	m->val = strdup(value);
	if (!m->key || !m->val) {
		free(m->key);
		free(m->val);
		return cdm_fail(err, CDM_ENOMEM, "metadata: out of memory");
	}
	w->nmeta++;
	return 0;
}

/* Reference writer order: larger dtype alignment first, then by name; keeps
 * every tensor aligned to its element size when the data starts at 8k. */
static int wt_cmp(const void *a, const void *b)
{
	const struct w_tensor *x = *(const struct w_tensor *const *)a;
	const struct w_tensor *y = *(const struct w_tensor *const *)b;
	size_t sx = dtypes[x->dtype].size, sy = dtypes[y->dtype].size;
	if (sx != sy)
		return sx > sy ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The header JSON (unpadded) for tensors in `order`. */
static char *build_header(const cdm_st_writer *w, struct w_tensor **order, struct cdm_err *err)
{
	json_t *root = json_object(), *meta = json_object();
	int bad = !root || !meta;
	for (size_t i = 0; !bad && i < w->nmeta; i++)
		bad = json_object_set_new(meta, w->meta[i].key, json_string(w->meta[i].val)) != 0;
	if (!bad && w->nmeta)
		bad = json_object_set(root, "__metadata__", meta) != 0;
	uint64_t off = 0;
	for (size_t i = 0; !bad && i < w->n; i++) {
		const struct w_tensor *t = order[i];
		json_t *shape = json_array();
		bad = !shape;
		for (int d = 0; !bad && d < t->ndim; d++)
			bad = json_array_append_new(shape, json_integer(t->shape[d])) != 0;
		if (bad) {
			json_decref(shape);
			break;
		}
		/* "o" hands our reference to shape over to the new object */
		json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtypes[t->dtype].name,
				      "shape", shape, "data_offsets", (json_int_t)off,
				      (json_int_t)(off + t->nbytes));
		bad = !e || json_object_set_new(root, t->name, e) != 0;
		off += t->nbytes;
	}
	char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(meta);
	json_decref(root);
	if (!s)
		cdm_fail(err, CDM_ENOMEM, "safetensors header: out of memory");
	return s;
}

int cdm_st_writer_save(cdm_st_writer *w, const char *path, unsigned mode, int zstd_level,
		       struct cdm_err *err)
{
	struct w_tensor **order = malloc((w->n ? w->n : 1) * sizeof *order);
	if (!order)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
	for (size_t i = 0; i < w->n; i++)
		order[i] = &w->t[i];
	qsort(order, w->n, sizeof *order, wt_cmp);
	char *hdr = build_header(w, order, err);
	if (!hdr) {
		free(order);
		return err ? err->code : CDM_ENOMEM;
	}
	size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
	uint64_t total = 8 + hl + pad, n = hl + pad;
	for (size_t i = 0; i < w->n; i++)
		total += w->t[i].nbytes;
	uint8_t lenbuf[8];
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)(n >> (8 * i));
	cdm_sink *s;
	int rc = cdm_sink_open(&s, path, zstd_level, total, err);
	if (rc == 0) {
		rc = cdm_sink_write(s, lenbuf, 8, err);
		if (rc == 0)
			rc = cdm_sink_write(s, hdr, hl, err);
		if (rc == 0)
			rc = cdm_sink_write(s, "        ", pad, err);
		for (size_t i = 0; rc == 0 && i < w->n; i++)
			rc = cdm_sink_write(s, order[i]->data, order[i]->nbytes, err);
		if (rc == 0)
			rc = cdm_sink_commit(s, mode, err);
		else
			cdm_sink_abort(s);
	}
	free(hdr);
	free(order);
	return rc;
}
