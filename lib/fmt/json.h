/*
 * fmt/json: thin helpers over jansson for configuration files
 * (config.json, scheduler_config.json, model_index.json, share metadata).
 *
 * Owns: loading with one clear message ("config.json: line 3 column 5:
 * ..."), refusing duplicate keys, invalid UTF-8 (jansson), NUL in strings and
 * nesting deeper than CDM_JSON_MAX_DEPTH (checked before jansson recurses);
 * typed getters with diffusers-style defaults. Does not own: the meaning or
 * range of any key (lib/model and lib/sched check those).
 *
 * Getters distinguish three states through `*state` (may be NULL):
 * CDM_JSON_MISSING (key absent: *out = default), CDM_JSON_NULL (JSON null,
 * i.e. Python None: *out = default, caller decides) and CDM_JSON_SET. A value
 * of the wrong type is CDM_EINPUT naming `what` and the key, e.g.
 *   config.json: key 'block_out_channels': expected array of integers
 * Strings returned are borrowed from the json_t and live as long as it.
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_FMT_JSON_H
#define CDM_FMT_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_JSON_MAX_DEPTH 64
#define CDM_JSON_MAX_BYTES ((uint64_t)64 << 20) /* config files are small */

enum cdm_json_state { CDM_JSON_MISSING = 0, CDM_JSON_NULL = 1, CDM_JSON_SET = 2 };

/* Load a JSON object from a file (zstd allowed, "-" = stdin). */
int cdm_json_load(const char *path, json_t **out, struct cdm_err *err);
/* Parse a JSON object from memory; `what` names it in messages. */
int cdm_json_parse(const void *buf, size_t len, const char *what, json_t **out,
		   struct cdm_err *err);

/* Deepest nesting of objects/arrays in buf (strings skipped); stops counting
 * once `max` + 1 is reached. Used before parsing untrusted text. */
int cdm_json_depth(const char *buf, size_t len, int max);

int cdm_json_int(const char *what, const json_t *obj, const char *key, int64_t def,
		 int64_t *out, int *state, struct cdm_err *err);
/* Integers are accepted as doubles. */
int cdm_json_double(const char *what, const json_t *obj, const char *key, double def,
		    double *out, int *state, struct cdm_err *err);
int cdm_json_bool(const char *what, const json_t *obj, const char *key, int def, int *out,
		  int *state, struct cdm_err *err);
int cdm_json_string(const char *what, const json_t *obj, const char *key, const char *def,
		    const char **out, int *state, struct cdm_err *err);
/* Arrays: at most `max` elements go to out[]; more is an error. Missing or
 * null copies def[0..def_n) (def may be NULL when def_n is 0). */
int cdm_json_int_array(const char *what, const json_t *obj, const char *key,
		       const int64_t *def, size_t def_n, int64_t *out, size_t max, size_t *n,
		       int *state, struct cdm_err *err);
int cdm_json_str_array(const char *what, const json_t *obj, const char *key,
		       const char *const *def, size_t def_n, const char **out, size_t max,
		       size_t *n, int *state, struct cdm_err *err);

#endif
