/* base: error messages and checked allocation (see base.h). */
#define _GNU_SOURCE
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

int cdm_fail(struct cdm_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int cdm_err_prefix(struct cdm_err *err, const char *fmt, ...)
{
	if (!err)
		return 0;
	char pre[256], old[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	snprintf(err->msg, sizeof err->msg, "%s%s", pre, old);
	return err->code;
}

int cdm_exit_status(int code)
{
	switch (code) {
	case CDM_OK:
		return 0;
	case CDM_EINPUT:
	case CDM_EIO:
	case CDM_ENOMEM:
		return 1;
	default:
		return 2;
	}
}

const char *cdm_strerror(int code)
{
	switch (code) {
	case CDM_OK: return "success";
	case CDM_EINPUT: return "invalid input";
	case CDM_EIO: return "i/o error";
	case CDM_ENOMEM: return "out of memory";
	case CDM_ENET: return "network failure";
	case CDM_EPROTO: return "protocol error";
	default: return "internal error";
	}
}

int cdm_mul_size(size_t a, size_t b, size_t *out)
{
	if (a && b > SIZE_MAX / a)
		return -1;
	*out = a * b;
	return 0;
}

void *cdm_alloc(size_t count, size_t size, struct cdm_err *err)
{
	size_t bytes;
	if (cdm_mul_size(count, size, &bytes) || bytes > CDM_ALLOC_MAX) {
		cdm_fail(err, CDM_ENOMEM, "allocation of %zu x %zu bytes refused", count, size);
		return NULL;
	}
	/* 64-byte alignment suits AVX-512 loads in the GEMM kernels. */
	size_t rounded = (bytes + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, rounded ? rounded : 64);
	if (!p)
		cdm_fail(err, CDM_ENOMEM, "out of memory allocating %zu bytes", bytes);
	return p;
}

void *cdm_zalloc(size_t count, size_t size, struct cdm_err *err)
{
	void *p = cdm_alloc(count, size, err);
	if (p)
		memset(p, 0, count * size);
	return p;
}

void cdm_free(void *p)
{
	free(p);
}

double cdm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t cdm_peak_rss(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024;
}
