/*
 * cmd/common: helpers shared by the tools (not part of libcdm): strict
 * number parsing for flags (strtol/strtod with end-pointer and range
 * checks), comma lists, the "tool: message" error line and its exit code,
 * and signal blocking around an atomic output.
 */
#ifndef CDM_CMD_COMMON_H
#define CDM_CMD_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "base/base.h"

/* Parse an integer in [min, max] for `flag`; on error fill err
 * ("--steps: 'x' is not an integer in 1..1000") and return CDM_EINPUT. */
int cdm_cli_int(const char *flag, const char *s, long long min, long long max, long long *out,
		struct cdm_err *err);
/* A finite double in [min, max]. */
int cdm_cli_double(const char *flag, const char *s, double min, double max, double *out,
		   struct cdm_err *err);
/* Comma-separated integers in [min, max]: at most `cap` of them into out. */
int cdm_cli_int_list(const char *flag, const char *s, long long min, long long max,
		     int64_t *out, int cap, int *n, struct cdm_err *err);

/* Print "prog: message" on stderr; return the exit status for err->code. */
int cdm_cli_fail(const char *prog, const struct cdm_err *err);
/* Print a usage error on ONE stderr line, "prog: msg; usage: synopsis"
 * (synopsis without newline); returns 1. */
int cdm_cli_usage_error(const char *prog, const char *synopsis, const char *msg);

/* Block SIGINT/SIGTERM/SIGHUP while an output is written and renamed, so an
 * interrupt cannot leave a temporary file behind; unblock delivers them. */
void cdm_cli_block_signals(int block);

#endif
