/* fmt/io: bounded whole-file reads, zstd, atomic writes (see io.h). */
#define _GNU_SOURCE
#include "io.h"
#include "st.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

static const uint8_t zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};

int cdm_is_zstd(const void *buf, size_t len)
{
	return len >= 4 && memcmp(buf, zstd_magic, 4) == 0;
}

/* Raw bytes we accept for `limit` bytes of content (zstd worst case). */
static uint64_t raw_limit(uint64_t limit)
{
	uint64_t extra = limit / 128 + (1u << 20);
	return limit > UINT64_MAX - extra ? UINT64_MAX : limit + extra;
}

static uint64_t phys_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psize <= 0)
		return UINT64_MAX;
	return (uint64_t)pages * (uint64_t)psize;
}

/* Grow *buf to at least `need` bytes (doubling, capped at `cap`). */
static int grow(uint8_t **buf, size_t *capacity, size_t need, uint64_t cap, const char *what,
		struct cdm_err *err)
{
	if (need <= *capacity)
		return 0;
	uint64_t n = *capacity ? *capacity : 65536;
	while (n < need)
		n = n > UINT64_MAX / 2 ? UINT64_MAX : n * 2;
	if (n > cap)
		n = cap;
	if (n < need || n > SIZE_MAX)
		return cdm_fail(err, CDM_ENOMEM, "%s: more than %llu bytes", what,
				(unsigned long long)cap);
	uint8_t *p = realloc(*buf, (size_t)n);
	if (!p)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory for %llu bytes", what,
				(unsigned long long)n);
	*buf = p;
	*capacity = (size_t)n;
	return 0;
}

int cdm_read_fd(int fd, uint64_t limit, const char *what, uint8_t **out, size_t *len,
		struct cdm_err *err)
{
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	struct stat sb;
	/* One byte past the limit, so that reading it proves the input too big. */
	uint64_t hard = limit == UINT64_MAX ? limit : limit + 1;
	/* Regular files: allocate the right size at once (+1 to see EOF). */
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
	    (uint64_t)sb.st_size < hard) {
		int rc = grow(&buf, &cap, (size_t)sb.st_size + 1, hard, what, err);
		if (rc < 0)
			return rc;
	}
	for (;;) {
		if (n == cap) {
			int rc = grow(&buf, &cap, n + 1, hard, what, err);
			if (rc < 0) {
				free(buf);
				return rc;
			}
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return cdm_fail(err, CDM_EIO, "%s: read failed: %s", what, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > limit) {
			free(buf);
			return cdm_fail(err, CDM_EINPUT, "%s: larger than the limit of %llu bytes", what,
					(unsigned long long)limit);
		}
	}
	*out = buf ? buf : malloc(1); /* an empty file still yields a buffer */
	if (!*out)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", what);
	*len = n;
	return 0;
}

static const char *zerr(size_t code)
{
	return ZSTD_getErrorName(code);
}

/* The output is full at the limit: what remains may only be frame
 * epilogues or empty frames. Anything that decodes to a byte is too much. */
static int probe_rest(ZSTD_DStream *ds, ZSTD_inBuffer *in, size_t *ret, uint64_t limit,
		      const char *what, struct cdm_err *err)
{
	for (;;) {
		uint8_t probe;
		ZSTD_outBuffer pb = {&probe, 1, 0};
		size_t in0 = in->pos;
		*ret = ZSTD_decompressStream(ds, &pb, in);
		if (ZSTD_isError(*ret))
			return cdm_fail(err, CDM_EINPUT, "%s: corrupt zstd data: %s", what,
					zerr(*ret));
		if (pb.pos)
			return cdm_fail(err, CDM_EINPUT,
					"%s: zstd content exceeds the limit of %llu bytes", what,
					(unsigned long long)limit);
		if ((*ret == 0 && in->pos == in->size) || in->pos == in0)
			return 0; /* done, or no progress: the caller judges *ret */
	}
}

int cdm_zstd_decompress(const void *src, size_t srclen, uint64_t limit, const char *what,
			uint8_t **out, size_t *outlen, struct cdm_err *err)
{
	uint64_t mem = phys_memory();
	if (limit > mem)
		limit = mem;
	if (limit > SIZE_MAX)
		limit = SIZE_MAX;
	/* The first frame's declared size: a hint for the first allocation and an
	 * early refusal (more frames can only add to it). */
	unsigned long long declared = ZSTD_getFrameContentSize(src, srclen);
	if (declared == ZSTD_CONTENTSIZE_ERROR)
		return cdm_fail(err, CDM_EINPUT, "%s: not a valid zstd stream", what);
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > limit)
		return cdm_fail(err, CDM_EINPUT,
				"%s: zstd content of %llu bytes exceeds the limit of %llu bytes", what,
				declared, (unsigned long long)limit);
	/* Start small unless the declared size is plausible for this input. */
	uint64_t start = (uint64_t)srclen * 8 + (64u << 10);
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared < start)
		start = declared;
	if (start > limit)
		start = limit;
	ZSTD_DStream *ds = ZSTD_createDStream();
	if (!ds)
		return cdm_fail(err, CDM_ENOMEM, "%s: cannot create a zstd decoder", what);
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = grow(&buf, &cap, start ? (size_t)start : 1, limit ? limit : 1, what, err);
	ZSTD_inBuffer in = {src, srclen, 0};
	ZSTD_outBuffer ob = {buf, cap, 0};
	size_t ret = 1;
	while (rc == 0) {
		ob.dst = buf;
		ob.size = cap;
		size_t in0 = in.pos, out0 = ob.pos;
		ret = ZSTD_decompressStream(ds, &ob, &in);
		if (ZSTD_isError(ret)) {
			rc = cdm_fail(err, CDM_EINPUT, "%s: corrupt zstd data: %s", what, zerr(ret));
			break;
		}
		if (ret == 0 && in.pos == in.size)
			break; /* last frame complete */
		if (ob.pos < ob.size) {
			if (in.pos == in.size || (in.pos == in0 && ob.pos == out0))
				break; /* starved: the stream is truncated (ret != 0) */
			continue;
		}
		if (ob.pos < limit) {
			rc = grow(&buf, &cap, cap + 1, limit, what, err);
			continue;
		}
		rc = probe_rest(ds, &in, &ret, limit, what, err);
		break;
	}
	ZSTD_freeDStream(ds);
	if (rc == 0 && ret != 0)
		rc = cdm_fail(err, CDM_EINPUT, "%s: truncated zstd stream", what);
	if (rc == 0 && in.pos != in.size)
		rc = cdm_fail(err, CDM_EINPUT, "%s: data after the zstd stream", what);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = ob.pos;
	return 0;
}

int cdm_read_file(const char *path, uint64_t limit, uint8_t **out, size_t *len,
		  struct cdm_err *err)
{
	int fd = 0;
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cdm_fail(err, errno == ENOENT || errno == EACCES ? CDM_EINPUT : CDM_EIO,
					"%s: cannot open: %s", path, strerror(errno));
	}
	const char *what = fd == 0 ? "stdin" : path;
	uint8_t *raw;
	size_t n;
	int rc = cdm_read_fd(fd, raw_limit(limit), what, &raw, &n, err);
	if (fd != 0)
		close(fd);
	if (rc < 0)
		return rc;
	if (cdm_is_zstd(raw, n)) {
		uint8_t *dec;
		size_t dn;
		rc = cdm_zstd_decompress(raw, n, limit, what, &dec, &dn, err);
		free(raw);
		if (rc < 0)
			return rc;
		raw = dec;
		n = dn;
	} else if (n > limit) {
		free(raw);
		return cdm_fail(err, CDM_EINPUT, "%s: larger than the limit of %llu bytes", what,
				(unsigned long long)limit);
	}
	*out = raw;
	*len = n;
	return 0;
}

/* ---- atomic output ------------------------------------------------------ */
struct cdm_sink {
	int fd;
	int to_stdout;
	char *path;      /* final name */
	char *tmp;       /* temporary name, NULL for stdout */
	ZSTD_CCtx *z;    /* NULL when not compressing */
	uint8_t *zbuf;   /* compressed output staging */
	size_t zcap;
};

static int write_all(int fd, const void *buf, size_t len, const char *what, struct cdm_err *err)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return cdm_fail(err, CDM_EIO, "%s: write failed: %s", what,
					w < 0 ? strerror(errno) : "no progress");
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void sink_free(cdm_sink *s)
{
	if (!s)
		return;
	if (s->fd >= 0 && !s->to_stdout)
		close(s->fd);
	ZSTD_freeCCtx(s->z);
	free(s->zbuf);
	free(s->path);
	free(s->tmp);
	free(s);
}

void cdm_sink_abort(cdm_sink *s)
{
	if (s && s->tmp)
		unlink(s->tmp);
	sink_free(s);
}

/* "<dir>/.<name>.XXXXXX" next to path. */
static char *temp_template(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t n = dlen + 1 + strlen(base) + 8 + 1;
	char *t = malloc(n);
	if (t)
		snprintf(t, n, "%.*s.%s.XXXXXX", (int)dlen, path, base);
	return t;
}

static int sink_setup_zstd(cdm_sink *s, int level, uint64_t pledged, struct cdm_err *err)
{
	s->z = ZSTD_createCCtx();
	s->zcap = ZSTD_CStreamOutSize();
	s->zbuf = malloc(s->zcap);
	if (!s->z || !s->zbuf)
		return cdm_fail(err, CDM_ENOMEM, "%s: cannot create a zstd encoder", s->path);
	if (level > ZSTD_maxCLevel())
		level = ZSTD_maxCLevel();
	ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(s->z, ZSTD_c_checksumFlag, 1);
	if (pledged != UINT64_MAX)
		ZSTD_CCtx_setPledgedSrcSize(s->z, pledged);
	return 0;
}

int cdm_sink_open(cdm_sink **out, const char *path, int zstd_level, uint64_t pledged,
		  struct cdm_err *err)
{
	*out = NULL;
	size_t plen = strlen(path);
	if (plen == 0 || path[plen - 1] == '/')
		return cdm_fail(err, CDM_EINPUT, "'%s': not a file name", path);
	cdm_sink *s = calloc(1, sizeof *s);
	if (!s)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
	s->fd = -1;
	s->path = strdup(path);
	if (!s->path) {
		sink_free(s);
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
	}
	if (strcmp(path, "-") == 0) {
		s->fd = 1;
		s->to_stdout = 1;
	} else {
		struct stat sb;
		if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			sink_free(s);
			return cdm_fail(err, CDM_EINPUT, "%s: is a directory", path);
		}
		char *tmpl = temp_template(path);
		if (!tmpl) {
			sink_free(s);
			return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
		}
		s->fd = mkostemp(tmpl, O_CLOEXEC);
		if (s->fd < 0) {
			int e = errno;
			free(tmpl);
			sink_free(s);
			return cdm_fail(err, CDM_EIO, "%s: cannot create a temporary file there: %s",
					path, strerror(e));
		}
		s->tmp = tmpl;
	}
	if (zstd_level > 0 && sink_setup_zstd(s, zstd_level, pledged, err) < 0) {
		cdm_sink_abort(s);
		return err ? err->code : CDM_ENOMEM;
	}
	*out = s;
	return 0;
}

/* Run the compressor until it has consumed `in` (or, with e_end, finished). */
static int zstd_pump(cdm_sink *s, ZSTD_inBuffer *in, ZSTD_EndDirective mode, struct cdm_err *err)
{
	for (;;) {
		ZSTD_outBuffer ob = {s->zbuf, s->zcap, 0};
		size_t left = ZSTD_compressStream2(s->z, &ob, in, mode);
		if (ZSTD_isError(left))
			return cdm_fail(err, CDM_EIO, "%s: zstd compression failed: %s", s->path,
					ZSTD_getErrorName(left));
		CDM_TRY(write_all(s->fd, s->zbuf, ob.pos, s->path, err));
		if (mode == ZSTD_e_end ? left == 0 : in->pos == in->size)
			return 0;
	}
}

int cdm_sink_write(cdm_sink *s, const void *buf, size_t len, struct cdm_err *err)
{
	if (!s->z)
		return write_all(s->fd, buf, len, s->path, err);
	ZSTD_inBuffer in = {buf, len, 0};
	return zstd_pump(s, &in, ZSTD_e_continue, err);
}

static void fsync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + 1, path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd); /* best effort: the rename is already visible */
		close(fd);
	}
}

int cdm_sink_commit(cdm_sink *s, unsigned mode, struct cdm_err *err)
{
	int rc = 0;
	if (s->z) {
		ZSTD_inBuffer in = {NULL, 0, 0};
		rc = zstd_pump(s, &in, ZSTD_e_end, err);
	}
	if (rc == 0 && s->to_stdout) {
		sink_free(s);
		return 0;
	}
	if (rc == 0 && fsync(s->fd) < 0)
		rc = cdm_fail(err, CDM_EIO, "%s: fsync failed: %s", s->path, strerror(errno));
	if (rc == 0 && fchmod(s->fd, mode & 07777) < 0)
		rc = cdm_fail(err, CDM_EIO, "%s: chmod failed: %s", s->path, strerror(errno));
	if (rc == 0) {
		int fd = s->fd;
		s->fd = -1;
		if (close(fd) < 0)
			rc = cdm_fail(err, CDM_EIO, "%s: close failed: %s", s->path, strerror(errno));
	}
	if (rc == 0 && rename(s->tmp, s->path) < 0)
		rc = cdm_fail(err, CDM_EIO, "%s: rename from temporary failed: %s", s->path,
			      strerror(errno));
	if (rc < 0) {
		cdm_sink_abort(s);
		return rc;
	}
	fsync_dir_of(s->path);
	free(s->tmp);
	s->tmp = NULL;
	sink_free(s);
	return 0;
}

int cdm_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode,
			  struct cdm_err *err)
{
	cdm_sink *s;
	CDM_TRY(cdm_sink_open(&s, path, 0, len, err));
	int rc = cdm_sink_write(s, buf, len, err);
	if (rc < 0) {
		cdm_sink_abort(s);
		return rc;
	}
	return cdm_sink_commit(s, mode, err);
}
