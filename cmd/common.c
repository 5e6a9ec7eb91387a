/* cmd/common: flag parsing and error reporting shared by the tools. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

int cdm_cli_int(const char *flag, const char *s, long long min, long long max, long long *out,
		struct cdm_err *err)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return cdm_fail(err, CDM_EINPUT, "%s: '%s' is not an integer in %lld..%lld", flag, s,
				min, max);
	*out = v;
	return 0;
}

int cdm_cli_double(const char *flag, const char *s, double min, double max, double *out,
		   struct cdm_err *err)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < min || v > max)
		return cdm_fail(err, CDM_EINPUT, "%s: '%s' is not a number in [%g, %g]", flag, s,
				min, max);
	*out = v;
	return 0;
}

int cdm_cli_int_list(const char *flag, const char *s, long long min, long long max,
		     int64_t *out, int cap, int *n, struct cdm_err *err)
{
	char buf[4096];
	if (strlen(s) >= sizeof buf)
		return cdm_fail(err, CDM_EINPUT, "%s: list too long", flag);
	strcpy(buf, s);
	*n = 0;
	char *save = NULL;
	const char *sep = ",";
	if (!*buf || buf[strlen(buf) - 1] == ',' || buf[0] == ',' || strstr(buf, ",,"))
		return cdm_fail(err, CDM_EINPUT, "%s: '%s' is not a comma-separated list", flag, s);
	for (char *tok = strtok_r(buf, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
		long long v;
		if (*n >= cap)
			return cdm_fail(err, CDM_EINPUT, "%s: more than %d values", flag, cap);
		CDM_TRY(cdm_cli_int(flag, tok, min, max, &v, err));
		out[(*n)++] = v;
	}
	return 0;
}

/* Messages quote file names and flag values as given; a control character
 * in them (a newline in a file name) must not break the one-line rule. */
static void put_line_text(const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, stderr);
}

int cdm_cli_fail(const char *prog, const struct cdm_err *err)
{
	fprintf(stderr, "%s: ", prog);
	put_line_text(err->msg[0] ? err->msg : cdm_strerror(err->code));
	fputc('\n', stderr);
	int st = cdm_exit_status(err->code);
	return st ? st : 1;
}

int cdm_cli_usage_error(const char *prog, const char *synopsis, const char *msg)
{
	fprintf(stderr, "%s: ", prog);
	put_line_text(msg);
	fprintf(stderr, "; usage: %s\n", synopsis);
	return 1;
}

void cdm_cli_block_signals(int block)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}
