/* Fuzz target: config JSON loading and the typed getters. */
#include "../../lib/fmt/json.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdm_err err = {0};
	json_t *j = NULL;
	if (cdm_json_parse(data, size, "config.json", &j, &err) < 0) {
		if (err.msg[0] == '\0' || err.code >= 0)
			abort();
		return 0;
	}
	/* every getter on every key: each either succeeds or explains */
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		int64_t i, arr[16];
		double d;
		int b, st;
		const char *s, *sarr[16];
		size_t n;
		cdm_json_int("c", j, key, 0, &i, &st, &err);
		cdm_json_double("c", j, key, 0, &d, &st, &err);
		cdm_json_bool("c", j, key, 0, &b, &st, &err);
		cdm_json_string("c", j, key, "", &s, &st, &err);
		cdm_json_int_array("c", j, key, NULL, 0, arr, 16, &n, &st, &err);
		cdm_json_str_array("c", j, key, NULL, 0, sarr, 16, &n, &st, &err);
		if (n > 16)
			abort();
	}
	json_decref(j);
	return 0;
}
