/* fmt/json: jansson loading and typed getters with defaults (see json.h). */
#include "json.h"
#include "st.h"

#include <stdlib.h>
#include <string.h>

int cdm_json_depth(const char *buf, size_t len, int max)
{
	int depth = 0, deepest = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (c == '\\')
				i++; /* skip the escaped character (\" must not end the string) */
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > deepest && (deepest = depth) > max)
				return deepest;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return deepest;
}

int cdm_json_parse(const void *buf, size_t len, const char *what, json_t **out,
		   struct cdm_err *err)
{
	*out = NULL;
	if (cdm_json_depth(buf, len, CDM_JSON_MAX_DEPTH) > CDM_JSON_MAX_DEPTH)
		return cdm_fail(err, CDM_EINPUT, "%s: JSON nested deeper than %d levels", what,
				CDM_JSON_MAX_DEPTH);
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return cdm_fail(err, CDM_EINPUT, "%s: line %d column %d: %s", what, je.line,
				je.column, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return cdm_fail(err, CDM_EINPUT, "%s: top level is not a JSON object", what);
	}
	*out = j;
	return 0;
}

int cdm_json_load(const char *path, json_t **out, struct cdm_err *err)
{
	uint8_t *buf;
	size_t len;
	*out = NULL;
	CDM_TRY(cdm_read_file(path, CDM_JSON_MAX_BYTES, &buf, &len, err));
	int rc = cdm_json_parse(buf, len, strcmp(path, "-") ? path : "stdin", out, err);
	cdm_free(buf);
	return rc;
}

/* Look up key; returns the value or NULL and sets *state. */
static json_t *lookup(const json_t *obj, const char *key, int *state)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	int s = !v ? CDM_JSON_MISSING : json_is_null(v) ? CDM_JSON_NULL : CDM_JSON_SET;
	if (state)
		*state = s;
	return s == CDM_JSON_SET ? v : NULL;
}

static int type_error(const char *what, const char *key, const char *expected,
		      struct cdm_err *err)
{
	return cdm_fail(err, CDM_EINPUT, "%s: key '%s': expected %s", what, key, expected);
}

int cdm_json_int(const char *what, const json_t *obj, const char *key, int64_t def,
		 int64_t *out, int *state, struct cdm_err *err)
{
	json_t *v = lookup(obj, key, state);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return type_error(what, key, "an integer", err);
	*out = json_integer_value(v);
	return 0;
}

int cdm_json_double(const char *what, const json_t *obj, const char *key, double def,
		    double *out, int *state, struct cdm_err *err)
{
	json_t *v = lookup(obj, key, state);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_number(v))
		return type_error(what, key, "a number", err);
	*out = json_number_value(v);
	return 0;
}

int cdm_json_bool(const char *what, const json_t *obj, const char *key, int def, int *out,
		  int *state, struct cdm_err *err)
{
	json_t *v = lookup(obj, key, state);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return type_error(what, key, "true or false", err);
	*out = json_is_true(v);
	return 0;
}

int cdm_json_string(const char *what, const json_t *obj, const char *key, const char *def,
		    const char **out, int *state, struct cdm_err *err)
{
	json_t *v = lookup(obj, key, state);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return type_error(what, key, "a string", err);
	*out = json_string_value(v);
	return 0;
}

/* Shared checks for arrays: returns the array, or NULL with *rc set. */
static json_t *array_of(const char *what, const json_t *obj, const char *key, size_t max,
			const char *expected, int *state, int *rc, struct cdm_err *err)
{
	int st;
	json_t *v = lookup(obj, key, &st);
	if (state)
		*state = st;
	*rc = 0;
	if (!v)
		return NULL;
	if (!json_is_array(v)) {
		*rc = type_error(what, key, expected, err);
		return NULL;
	}
	if (json_array_size(v) > max) {
		*rc = cdm_fail(err, CDM_EINPUT, "%s: key '%s': %zu elements, at most %zu allowed",
			       what, key, json_array_size(v), max);
		return NULL;
	}
	return v;
}

int cdm_json_int_array(const char *what, const json_t *obj, const char *key,
		       const int64_t *def, size_t def_n, int64_t *out, size_t max, size_t *n,
		       int *state, struct cdm_err *err)
{
	int rc;
	json_t *a = array_of(what, obj, key, max, "array of integers", state, &rc, err);
	*n = 0;
	if (rc < 0)
		return rc;
	if (!a) {
		if (def_n > max)
			return cdm_fail(err, CDM_EINTERNAL, "%s: key '%s': default too long", what, key);
		for (size_t i = 0; i < def_n; i++)
			out[i] = def[i];
		*n = def_n;
		return 0;
	}
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		if (!json_is_integer(e))
			return type_error(what, key, "array of integers", err);
		out[i] = json_integer_value(e);
	}
	*n = json_array_size(a);
	return 0;
}

int cdm_json_str_array(const char *what, const json_t *obj, const char *key,
		       const char *const *def, size_t def_n, const char **out, size_t max,
		       size_t *n, int *state, struct cdm_err *err)
{
	int rc;
	json_t *a = array_of(what, obj, key, max, "array of strings", state, &rc, err);
	*n = 0;
	if (rc < 0)
		return rc;
	if (!a) {
		if (def_n > max)
			return cdm_fail(err, CDM_EINTERNAL, "%s: key '%s': default too long", what, key);
		for (size_t i = 0; i < def_n; i++)
			out[i] = def[i];
		*n = def_n;
		return 0;
	}
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		if (!json_is_string(e))
			return type_error(what, key, "array of strings", err);
		out[i] = json_string_value(e);
	}
	*n = json_array_size(a);
	return 0;
}
