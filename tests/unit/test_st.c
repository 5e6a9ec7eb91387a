/* safetensors: round trips, conversions, every hostile input class, atomic
 * writes. Each refusal asserts the code and a substring of the message. */
#define _GNU_SOURCE
#include "../../lib/fmt/io.h"
#include "../../lib/fmt/st.h"
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void path_in_tmp(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tmpdir, name);
}

/* [u64 len][header][data] in a new malloc'ed buffer. */
static uint8_t *make_st(const char *hdr, const void *data, size_t dlen, size_t *len)
{
	size_t hl = strlen(hdr);
	uint8_t *b = malloc(8 + hl + dlen + 1);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, hdr, hl);
	if (dlen)
		memcpy(b + 8 + hl, data, dlen);
	*len = 8 + hl + dlen;
	return b;
}

/* Parse hdr + dlen zero bytes; expect failure with code and substring. */
static void expect_bad(const char *hdr, size_t dlen, int code, const char *sub)
{
	static const uint8_t zeros[256];
	size_t len;
	uint8_t *b = make_st(hdr, zeros, dlen, &len);
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	int rc = cdm_st_open_mem(&st, b, len, "x.safetensors", &err);
	CHECK(rc == code && st == NULL, "header %s: rc %d, expected %d", hdr, rc, code);
	CHECK(strstr(err.msg, sub) && strstr(err.msg, "x.safetensors"),
	      "header %s: message '%s' lacks '%s'", hdr, err.msg, sub);
	cdm_st_close(st);
	free(b);
}

static void expect_ok(const char *hdr, size_t dlen, size_t ntensors)
{
	static const uint8_t zeros[256];
	size_t len;
	uint8_t *b = make_st(hdr, zeros, dlen, &len);
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	int rc = cdm_st_open_mem(&st, b, len, "ok.safetensors", &err);
	CHECK(rc == 0, "header %s refused: %s", hdr, err.msg);
	if (st)
		CHECK(cdm_st_count(st) == ntensors, "header %s: %zu tensors", hdr, cdm_st_count(st));
	cdm_st_close(st);
	free(b);
}

static void test_hostile(void)
{
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	/* shorter than the length field */
	CHECK(cdm_st_open_mem(&st, "\x02\0\0\0\0", 5, "x.safetensors", &err) == CDM_EINPUT,
	      "5-byte file refused");
	CHECK(strstr(err.msg, "x.safetensors: 5 bytes, too short") != NULL, "%s", err.msg);
	CHECK(cdm_st_open_mem(&st, "", 0, "x.safetensors", &err) == CDM_EINPUT, "empty refused");
	/* header length beyond the file, and 2^60 (refused before any allocation) */
	uint8_t b[24] = {0};
	b[1] = 0x04; /* 1024 */
	CHECK(cdm_st_open_mem(&st, b, sizeof b, "x.safetensors", &err) == CDM_EINPUT, "N > file");
	CHECK(strstr(err.msg, "header length 1024 exceeds the file (24 bytes)") != NULL, "%s",
	      err.msg);
	memset(b, 0, 8);
	b[7] = 0x10; /* 2^60 */
	CHECK(cdm_st_open_mem(&st, b, sizeof b, "x.safetensors", &err) == CDM_EINPUT, "2^60");
	CHECK(strstr(err.msg, "header length 1152921504606846976 exceeds the file") != NULL, "%s",
	      err.msg);
	memset(b, 0xff, 8); /* 2^64-1: no overflow in 8 + N */
	CHECK(cdm_st_open_mem(&st, b, sizeof b, "x.safetensors", &err) == CDM_EINPUT, "2^64-1");
	CHECK(strstr(err.msg, "exceeds the file") != NULL, "%s", err.msg);

	expect_bad("{abc", 0, CDM_EINPUT, "not valid JSON");
	expect_bad("", 0, CDM_EINPUT, "header is not a JSON object");
	expect_bad("   ", 0, CDM_EINPUT, "header is not a JSON object");
	expect_bad("[1,2]", 0, CDM_EINPUT, "header is not a JSON object");
	expect_bad("\"str\"", 0, CDM_EINPUT, "header is not a JSON object");
	expect_bad("{} x", 0, CDM_EINPUT, "not valid JSON");
	expect_bad("{\"\xff\xfe\":{}}", 0, CDM_EINPUT, "not valid JSON");          /* bad UTF-8 */
	expect_bad("{\"a\\u0000b\":{}}", 0, CDM_EINPUT, "not valid JSON");         /* NUL */
	expect_bad("{\"a\":[[[[[[[[[[1]]]]]]]]]]}", 0, CDM_EINPUT, "nested deeper than 8");
	expect_bad("{\"a\":5}", 0, CDM_EINPUT, "tensor 'a': entry is not an object");
	expect_bad("{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CDM_EINPUT,
		   "tensor 'a': unsupported dtype 'I8'");
	expect_bad("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CDM_EINPUT,
		   "'dtype' missing");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, CDM_EINPUT,
		   "'shape' missing");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, CDM_EINPUT,
		   "shape[0] is not a non-negative integer");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1,
		   CDM_EINPUT, "shape[0] is not a non-negative integer");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
		   "\"data_offsets\":[0,0]}}", 0, CDM_EINPUT, "element count overflows");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
		   "\"data_offsets\":[0,0]}}", 0, CDM_EINPUT, "element count overflows");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
		   "\"data_offsets\":[0,0]}}", 0, CDM_EINPUT, "not valid JSON");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
		   1, CDM_EINPUT, "9 dimensions");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, CDM_EINPUT, "'data_offsets' must be");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, CDM_EINPUT,
		   "'data_offsets' must be");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1, CDM_EINPUT,
		   "'data_offsets' must be");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, CDM_EINPUT,
		   "data_offsets [8,0] end before they begin");
	expect_bad("{\"conv.weight\":{\"dtype\":\"F32\",\"shape\":[5,5],\"data_offsets\":[0,96]}}", 96,
		   CDM_EINPUT, "tensor 'conv.weight': data_offsets [0,96] hold 96 bytes, shape [5,5] F32 needs 100");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, CDM_EINPUT,
		   "extend beyond the data (4 bytes)");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CDM_EINPUT,
		   "tensors 'a' and 'b' overlap");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, CDM_EINPUT,
		   "hole in the data: bytes [8,12)");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CDM_EINPUT,
		   "hole in the data: bytes [0,4)");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, CDM_EINPUT,
		   "tensors end at data offset 8 but the data is 12 bytes");
	expect_bad("{}", 3, CDM_EINPUT, "tensors end at data offset 0 but the data is 3 bytes");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		   "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, CDM_EINPUT,
		   "duplicate tensor name");
	expect_bad("{\"__metadata__\":{\"format\":1}}", 0, CDM_EINPUT,
		   "__metadata__ value of 'format' is not a string");
	expect_bad("{\"__metadata__\":{\"format\":{\"x\":\"y\"}}}", 0, CDM_EINPUT, "is not a string");
	expect_bad("{\"__metadata__\":[\"pt\"]}", 0, CDM_EINPUT, "__metadata__ is not an object");

	/* accepted: JSON order differing from offset order (as the reference
	 * reader does), whitespace around the header, empty and scalar tensors */
	expect_ok("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
		  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, 2);
	expect_ok(" \n\t{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}\r\n  ", 1, 1);
	expect_ok("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,7],\"data_offsets\":[0,0]},"
		  "\"f\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]}}", 0, 2);
	expect_ok("{}", 0, 0);
	expect_ok("{\"__metadata__\":{}}", 0, 0);
}

/* Header length exactly over the 100,000,000 limit with a (sparse) file that
 * is big enough: the limit, not the file size, refuses it. */
static void test_header_limit(void)
{
	char p[96];
	path_in_tmp(p, sizeof p, "big.safetensors");
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	uint64_t n = CDM_ST_MAX_HEADER + 1;
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(n >> (8 * i));
	CHECK(fd >= 0 && write(fd, b, 8) == 8 && ftruncate(fd, (off_t)(8 + n)) == 0, "sparse file");
	close(fd);
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	CHECK(cdm_st_open(&st, p, &err) == CDM_EINPUT, "header over the limit refused");
	CHECK(strstr(err.msg, "header length 100000001 exceeds the limit of 100000000") != NULL,
	      "%s", err.msg);
	unlink(p);
	CHECK(cdm_st_open(&st, p, &err) == CDM_EINPUT && strstr(err.msg, "cannot open"),
	      "missing file: %s", err.msg);
}

/* Writer content used by several tests. */
static uint8_t payload[9][64];
static const struct {
	const char *name;
	enum cdm_dtype dt;
	int ndim;
	int64_t shape[3];
} spec[] = {
	{"f32", CDM_F32, 2, {2, 3}}, {"f16", CDM_F16, 1, {5}},     {"bf16", CDM_BF16, 1, {3}},
	{"f64", CDM_F64, 1, {3}},    {"u64", CDM_U64, 2, {2, 2}},  {"i64", CDM_I64, 1, {1}},
	{"i32", CDM_I32, 1, {3}},    {"u8", CDM_U8, 1, {7}},       {"bool", CDM_BOOL, 1, {2}},
	{"scalar", CDM_F32, 0, {0}}, {"empty", CDM_F32, 2, {0, 3}},
};
#define NSPEC (sizeof spec / sizeof spec[0])

static cdm_st_writer *make_writer(uint64_t *rng)
{
	struct cdm_err err = {0};
	cdm_st_writer *w;
	CHECK(cdm_st_writer_new(&w, &err) == 0, "writer");
	for (size_t i = 0; i < 9; i++)
		for (int k = 0; k < 64; k++)
			payload[i][k] = (uint8_t)check_rand(rng);
	/* reverse order to exercise the writer's sort */
	for (size_t i = NSPEC; i-- > 0;)
		CHECK(cdm_st_writer_add(w, spec[i].name, spec[i].dt, spec[i].ndim, spec[i].shape,
					payload[i < 9 ? i : 0], &err) == 0, "add %s: %s", spec[i].name,
		      err.msg);
	CHECK(cdm_st_writer_add(w, "f32", CDM_F32, 0, NULL, payload[0], &err) == CDM_EINPUT &&
	      strstr(err.msg, "added twice"), "duplicate add refused: %s", err.msg);
	CHECK(cdm_st_writer_add(w, "__metadata__", CDM_F32, 0, NULL, payload[0], &err) ==
	      CDM_EINPUT, "reserved name refused");
	CHECK(cdm_st_writer_meta(w, "format", "pt", &err) == 0, "meta");
	CHECK(cdm_st_writer_meta(w, "note", "first", &err) == 0, "meta");
	CHECK(cdm_st_writer_meta(w, "note", "h\xc3\xa9llo \"q\"", &err) == 0, "meta replace");
	return w;
}

static void check_contents(const cdm_st *st, const char *what)
{
	CHECK(cdm_st_count(st) == NSPEC, "%s: %zu tensors", what, cdm_st_count(st));
	for (size_t i = 0; i < NSPEC; i++) {
		const struct cdm_st_tensor *t = cdm_st_find(st, spec[i].name);
		CHECK(t != NULL, "%s: tensor %s present", what, spec[i].name);
		if (!t)
			continue;
		uint64_t numel = 1;
		for (int d = 0; d < spec[i].ndim; d++)
			numel *= (uint64_t)spec[i].shape[d];
		CHECK(t->dtype == spec[i].dt && t->ndim == spec[i].ndim && t->numel == numel &&
		      t->nbytes == numel * cdm_dtype_size(t->dtype), "%s: %s header", what, t->name);
		for (int d = 0; d < t->ndim; d++)
			CHECK(t->shape[d] == spec[i].shape[d], "%s: %s dim %d", what, t->name, d);
		CHECK(t->nbytes == 0 || memcmp(t->data, payload[i < 9 ? i : 0], t->nbytes) == 0,
		      "%s: %s data", what, t->name);
		/* the writer's order keeps each element type naturally aligned */
		CHECK((uintptr_t)t->data % cdm_dtype_size(t->dtype) == 0 || t->nbytes == 0,
		      "%s: %s aligned", what, t->name);
	}
	for (size_t i = 1; i < cdm_st_count(st); i++)
		CHECK(strcmp(cdm_st_at(st, i - 1)->name, cdm_st_at(st, i)->name) < 0, "sorted by name");
	CHECK(cdm_st_at(st, NSPEC) == NULL, "at() out of range is NULL");
	CHECK(cdm_st_find(st, "nope") == NULL, "find absent");
	const char *v = cdm_st_meta(st, "note");
	CHECK(v && strcmp(v, "h\xc3\xa9llo \"q\"") == 0, "%s: meta note '%s'", what, v ? v : "(null)");
	CHECK(cdm_st_meta(st, "missing") == NULL, "absent meta");
	CHECK(cdm_st_meta_count(st) == 2, "two meta keys");
	const char *k;
	CHECK(cdm_st_meta_at(st, 0, &k, &v) == 0 && strcmp(k, "format") == 0 && strcmp(v, "pt") == 0,
	      "meta_at sorted");
	CHECK(cdm_st_meta_at(st, 2, &k, &v) == -1, "meta_at out of range");
}

static void test_roundtrip(uint64_t *rng)
{
	cdm_st_writer *w = make_writer(rng);
	struct cdm_err err = {0};
	char p[96], pz[96];
	path_in_tmp(p, sizeof p, "rt.safetensors");
	path_in_tmp(pz, sizeof pz, "rt.safetensors.zst");
	CHECK(cdm_st_writer_save(w, p, 0640, 0, &err) == 0, "save: %s", err.msg);
	CHECK(cdm_st_writer_save(w, pz, 0600, 3, &err) == 0, "save zstd: %s", err.msg);
	cdm_st_writer_free(w);

	struct stat sb;
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0640, "mode 0640 (got %o)",
	      (unsigned)sb.st_mode & 0777);
	uint8_t *raw;
	size_t n;
	CHECK(cdm_read_file(p, 1 << 20, &raw, &n, &err) == 0, "read raw: %s", err.msg);
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | raw[i];
	CHECK((8 + hl) % 8 == 0, "data starts at a multiple of 8 (N=%llu)", (unsigned long long)hl);
	CHECK(raw[8] == '{' && raw[8 + hl - 1] != '\0', "header starts with {");
	CHECK(memmem(raw + 8, hl, "\"__metadata__\"", 14) != NULL, "metadata written");

	cdm_st *st = NULL;
	CHECK(cdm_st_open(&st, p, &err) == 0, "open: %s", err.msg);
	if (st) {
		CHECK(strcmp(cdm_st_path(st), p) == 0, "path kept");
		check_contents(st, "plain");
		const uint64_t *u;
		int owned = -1;
		int64_t sh[2] = {2, 2};
		CHECK(cdm_st_load_u64(st, "u64", 2, sh, &u, &owned, &err) == 0 && owned == 0 &&
		      memcmp(u, payload[4], 32) == 0, "u64 borrowed: %s", err.msg);
		CHECK(cdm_st_load_u64(st, "f64", 1, (int64_t[]){3}, &u, &owned, &err) == CDM_EINPUT &&
		      strstr(err.msg, "tensor 'f64': dtype F64, expected U64"), "%s", err.msg);
		float *f;
		CHECK(cdm_st_load_f32(st, "f32", 2, (int64_t[]){3, 2}, &f, &err) == CDM_EINPUT &&
		      strstr(err.msg, "tensor 'f32': shape [2,3], expected [3,2]"), "%s", err.msg);
		CHECK(cdm_st_load_f32(st, "zz", 1, (int64_t[]){1}, &f, &err) == CDM_EINPUT &&
		      strstr(err.msg, "no tensor 'zz'"), "%s", err.msg);
		CHECK(cdm_st_load_f32(st, "u8", 1, (int64_t[]){7}, &f, &err) == CDM_EINPUT &&
		      strstr(err.msg, "not a float type"), "%s", err.msg);
		CHECK(cdm_st_load_f32(st, "f32", 2, (int64_t[]){2, 3}, &f, &err) == 0 &&
		      memcmp(f, payload[0], 24) == 0, "load f32");
		cdm_free(f);
		CHECK(cdm_st_load_f32(st, "f64", 1, (int64_t[]){3}, &f, &err) == 0, "load f64");
		double d;
		memcpy(&d, payload[3] + 8, 8);
		CHECK(f && (f[1] == (float)d || (isnan(f[1]) && isnan(d))), "f64 -> f32");
		cdm_free(f);
	}
	cdm_st_close(st);

	/* zstd: magic on disk, same tensors back; also through open_mem */
	uint8_t *zraw;
	size_t zn;
	int fd = open(pz, O_RDONLY);
	CHECK(cdm_read_fd(fd, 1 << 20, pz, &zraw, &zn, &err) == 0 && cdm_is_zstd(zraw, zn),
	      "zstd magic on disk");
	close(fd);
	st = NULL;
	CHECK(cdm_st_open(&st, pz, &err) == 0, "open zstd: %s", err.msg);
	if (st)
		check_contents(st, "zstd");
	cdm_st_close(st);
	st = NULL;
	CHECK(cdm_st_open_mem(&st, zraw, zn, "mem.zst", &err) == 0, "open_mem zstd: %s", err.msg);
	if (st)
		check_contents(st, "zstd-mem");
	cdm_st_close(st);

	/* cdm_read_file decompresses, and enforces its limit on the content */
	uint8_t *dec;
	size_t dn;
	CHECK(cdm_read_file(pz, 1 << 20, &dec, &dn, &err) == 0 && dn == n && memcmp(dec, raw, n) == 0,
	      "read_file decompresses");
	cdm_free(dec);
	CHECK(cdm_read_file(pz, n - 1, &dec, &dn, &err) == CDM_EINPUT &&
	      strstr(err.msg, "exceeds the limit"), "zstd limit: %s", err.msg);
	CHECK(cdm_read_file(p, n - 1, &dec, &dn, &err) == CDM_EINPUT &&
	      strstr(err.msg, "larger than the limit"), "plain limit: %s", err.msg);

	/* every prefix of a valid file (plain and zstd) fails cleanly */
	int prefix_bad = 0;
	for (size_t k = 0; k < n; k++) {
		st = NULL;
		if (cdm_st_open_mem(&st, raw, k, "prefix", &err) != CDM_EINPUT || st)
			prefix_bad++;
		cdm_st_close(st);
	}
	CHECK(prefix_bad == 0, "%d plain prefixes not refused", prefix_bad);
	prefix_bad = 0;
	for (size_t k = 0; k < zn; k++) {
		st = NULL;
		if (cdm_st_open_mem(&st, zraw, k, "zprefix", &err) != CDM_EINPUT || st)
			prefix_bad++;
		cdm_st_close(st);
	}
	CHECK(prefix_bad == 0, "%d zstd prefixes not refused", prefix_bad);
	/* trailing garbage after the zstd frame */
	uint8_t *zg = malloc(zn + 5);
	memcpy(zg, zraw, zn);
	memcpy(zg + zn, "junk!", 5);
	st = NULL;
	CHECK(cdm_st_open_mem(&st, zg, zn + 5, "zg", &err) == CDM_EINPUT &&
	      strstr(err.msg, "zstd"), "zstd trailing junk: %s", err.msg);
	cdm_st_close(st);
	free(zg);
	free(zraw);
	free(raw);
	unlink(p);
	unlink(pz);
}

/* stdin as a regular file (mapped) and as a pipe (read). */
static void test_stdin(uint64_t *rng)
{
	cdm_st_writer *w = make_writer(rng);
	struct cdm_err err = {0};
	char p[96];
	path_in_tmp(p, sizeof p, "in.safetensors");
	CHECK(cdm_st_writer_save(w, p, 0644, 0, &err) == 0, "save: %s", err.msg);
	cdm_st_writer_free(w);
	int saved = dup(0);
	int fd = open(p, O_RDONLY);
	dup2(fd, 0);
	close(fd);
	cdm_st *st = NULL;
	CHECK(cdm_st_open(&st, "-", &err) == 0, "stdin file: %s", err.msg);
	if (st) {
		CHECK(strcmp(cdm_st_path(st), "stdin") == 0, "named stdin");
		check_contents(st, "stdin-file");
	}
	cdm_st_close(st);
	uint8_t *raw;
	size_t n;
	CHECK(cdm_read_file(p, 1 << 20, &raw, &n, &err) == 0, "read");
	int pfd[2];
	CHECK(pipe(pfd) == 0 && n < 60000 && write(pfd[1], raw, n) == (ssize_t)n, "pipe");
	close(pfd[1]);
	dup2(pfd[0], 0);
	close(pfd[0]);
	st = NULL;
	CHECK(cdm_st_open(&st, "-", &err) == 0, "stdin pipe: %s", err.msg);
	if (st)
		check_contents(st, "stdin-pipe");
	cdm_st_close(st);
	dup2(saved, 0);
	close(saved);
	free(raw);
	unlink(p);
}

static void test_f16(void)
{
	static const struct {
		uint16_t h;
		float f;
	} v[] = {
		{0x3C00, 1.0f},     {0xC000, -2.0f},           {0x7BFF, 65504.0f},
		{0x0001, 0x1p-24f}, {0x03FF, 1023 * 0x1p-24f}, {0x0400, 0x1p-14f},
		{0x3555, 0.333251953125f}, {0x8000, -0.0f},    {0x7C00, INFINITY},
		{0xFC00, -INFINITY}, {0x8001, -0x1p-24f},     {0x5640, 100.0f},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		float f = cdm_f16_to_f32(v[i].h);
		CHECK(f == v[i].f && signbit(f) == signbit(v[i].f), "f16 %04x -> %g, expected %g",
		      v[i].h, f, v[i].f);
	}
	CHECK(isnan(cdm_f16_to_f32(0x7E00)) && isnan(cdm_f16_to_f32(0xFC01)), "f16 nan");
	CHECK(cdm_bf16_to_f32(0x3F80) == 1.0f && cdm_bf16_to_f32(0xC040) == -3.0f &&
	      cdm_bf16_to_f32(0x7F80) == INFINITY && cdm_bf16_to_f32(0x0001) == 0x1p-133f &&
	      isnan(cdm_bf16_to_f32(0x7FC0)), "bf16 values");
	/* exhaustive: every finite half equals its exact value m * 2^(e-25) */
	int bad = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
		if (e == 0x1f)
			continue;
		double exact = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
		if (h & 0x8000)
			exact = -exact;
		bad += cdm_f16_to_f32((uint16_t)h) != (float)exact;
	}
	CHECK(bad == 0, "%d halves convert wrongly", bad);
	/* through a file */
	uint16_t hv[3] = {0x3C00, 0x0001, 0xC000};
	struct cdm_err err = {0};
	cdm_st_writer *w;
	cdm_st_writer_new(&w, &err);
	cdm_st_writer_add(w, "h", CDM_F16, 1, (int64_t[]){3}, hv, &err);
	char p[96];
	path_in_tmp(p, sizeof p, "h.safetensors");
	CHECK(cdm_st_writer_save(w, p, 0644, 0, &err) == 0, "save");
	cdm_st_writer_free(w);
	cdm_st *st = NULL;
	float *f = NULL;
	CHECK(cdm_st_open(&st, p, &err) == 0 &&
	      cdm_st_load_f32(st, "h", 1, (int64_t[]){3}, &f, &err) == 0, "load f16: %s", err.msg);
	CHECK(f && f[0] == 1.0f && f[1] == 0x1p-24f && f[2] == -2.0f, "f16 tensor values");
	cdm_free(f);
	cdm_st_close(st);
	unlink(p);
}

static int count_temps(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static void test_atomic(void)
{
	struct cdm_err err = {0};
	char p[96];
	path_in_tmp(p, sizeof p, "keep.safetensors");
	CHECK(cdm_write_file_atomic(p, "old", 3, 0644, &err) == 0, "write old: %s", err.msg);
	/* A write that fails half-way (file size limit -> EFBIG) leaves the old
	 * file and no temporary. */
	static uint8_t big[65536];
	cdm_st_writer *w;
	cdm_st_writer_new(&w, &err);
	cdm_st_writer_add(w, "big", CDM_U8, 1, (int64_t[]){sizeof big}, big, &err);
	struct rlimit old_lim, lim;
	getrlimit(RLIMIT_FSIZE, &old_lim);
	lim = old_lim;
	lim.rlim_cur = 4096;
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	int rc = cdm_st_writer_save(w, p, 0644, 0, &err);
	setrlimit(RLIMIT_FSIZE, &old_lim);
	CHECK(rc == CDM_EIO && strstr(err.msg, "keep.safetensors: write failed"),
	      "EFBIG reported: %d %s", rc, err.msg);
	uint8_t *b;
	size_t n;
	CHECK(cdm_read_file(p, 100, &b, &n, &err) == 0 && n == 3 && memcmp(b, "old", 3) == 0,
	      "old file untouched");
	cdm_free(b);
	CHECK(count_temps(tmpdir) == 0, "no temporary left behind");
	/* missing directory, a directory as target, and (non-root) an unwritable one */
	char q[128];
	snprintf(q, sizeof q, "%s/nodir/x.safetensors", tmpdir);
	CHECK(cdm_st_writer_save(w, q, 0644, 0, &err) == CDM_EIO &&
	      strstr(err.msg, "cannot create a temporary file"), "missing dir: %s", err.msg);
	CHECK(cdm_st_writer_save(w, tmpdir, 0644, 0, &err) == CDM_EINPUT &&
	      strstr(err.msg, "is a directory"), "dir target: %s", err.msg);
	if (geteuid() != 0) {
		char ro[96];
		path_in_tmp(ro, sizeof ro, "ro");
		mkdir(ro, 0555);
		snprintf(q, sizeof q, "%s/x", ro);
		CHECK(cdm_st_writer_save(w, q, 0644, 0, &err) == CDM_EIO, "unwritable dir");
		rmdir(ro);
	}
	/* success replaces the old file */
	CHECK(cdm_st_writer_save(w, p, 0600, 0, &err) == 0, "save: %s", err.msg);
	cdm_st *st = NULL;
	CHECK(cdm_st_open(&st, p, &err) == 0 && cdm_st_find(st, "big"), "replaced");
	cdm_st_close(st);
	CHECK(count_temps(tmpdir) == 0, "no temporary after success");
	cdm_st_writer_free(w);
	unlink(p);
}

/* "-" writes to stdout; a zstd stream without a declared size is still
 * held to the read limit (streaming path). */
static void test_stdout_and_stream_limit(uint64_t *rng)
{
	struct cdm_err err = {0};
	char p[96];
	path_in_tmp(p, sizeof p, "stdout.safetensors");
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	int saved = dup(1);
	fflush(stdout);
	dup2(fd, 1);
	close(fd);
	cdm_st_writer *w = make_writer(rng);
	int rc = cdm_st_writer_save(w, "-", 0644, 0, &err);
	cdm_st_writer_free(w);
	dup2(saved, 1);
	close(saved);
	CHECK(rc == 0, "save to stdout: %s", err.msg);
	cdm_st *st = NULL;
	CHECK(cdm_st_open(&st, p, &err) == 0, "read back stdout output: %s", err.msg);
	if (st)
		check_contents(st, "stdout");
	cdm_st_close(st);
	CHECK(count_temps(tmpdir) == 0, "no temporary for stdout");

	/* zstd frame with unknown content size: 1 MiB of zeros */
	static uint8_t zeros[1 << 20];
	cdm_sink *s;
	char pz[96];
	path_in_tmp(pz, sizeof pz, "stream.zst");
	CHECK(cdm_sink_open(&s, pz, 3, UINT64_MAX, &err) == 0, "sink");
	for (int i = 0; i < 4; i++)
		cdm_sink_write(s, zeros, sizeof zeros / 4, &err);
	CHECK(cdm_sink_commit(s, 0644, &err) == 0, "commit: %s", err.msg);
	uint8_t *b;
	size_t n;
	CHECK(cdm_read_file(pz, sizeof zeros, &b, &n, &err) == 0 && n == sizeof zeros &&
	      b[12345] == 0, "stream decompresses at exactly the limit: %s", err.msg);
	cdm_free(b);
	CHECK(cdm_read_file(pz, sizeof zeros - 1, &b, &n, &err) == CDM_EINPUT &&
	      strstr(err.msg, "zstd content exceeds the limit of 1048575 bytes"),
	      "stream over the limit: %s", err.msg);
	CHECK(cdm_read_file(pz, 1000, &b, &n, &err) == CDM_EINPUT &&
	      strstr(err.msg, "exceeds the limit"), "stream far over the limit: %s", err.msg);
	unlink(pz);
	unlink(p);
}

int main(void)
{
	uint64_t rng = check_seed();
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cdm-test-st.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	test_hostile();
	test_header_limit();
	test_roundtrip(&rng);
	test_stdin(&rng);
	test_f16();
	test_atomic();
	test_stdout_and_stream_limit(&rng);
	rmdir(tmpdir);
	return check_done();
}
