/* JSON helpers: load messages, nesting, duplicates, typed getters with
 * missing / null / set states and type errors. */
#include "../../lib/fmt/json.h"
#include "check.h"

#include <string.h>

static json_t *parse(const char *s)
{
	json_t *j = NULL;
	struct cdm_err err = {0};
	CHECK(cdm_json_parse(s, strlen(s), "config.json", &j, &err) == 0, "parse %s: %s", s, err.msg);
	return j;
}

static void expect_bad(const char *s, const char *sub)
{
	json_t *j = NULL;
	struct cdm_err err = {0};
	CHECK(cdm_json_parse(s, strlen(s), "config.json", &j, &err) == CDM_EINPUT && !j,
	      "%s accepted", s);
	CHECK(strstr(err.msg, sub) != NULL, "message '%s' lacks '%s'", err.msg, sub);
	json_decref(j);
}

static void test_load(void)
{
	expect_bad("{\n  \"a\": 1,\n  \"b\" 2\n}", "config.json: line 3 column");
	expect_bad("{\"a\":1,\"a\":2}", "duplicate");
	expect_bad("[1,2]", "not a JSON object");
	expect_bad("{\"a\":\"\xff\"}", "config.json: line 1");
	expect_bad("{\"a\":\"x\\u0000y\"}", "config.json");
	char deep[400];
	int n = 0;
	n += snprintf(deep + n, sizeof deep - n, "{\"a\":");
	for (int i = 0; i < 70; i++)
		deep[n++] = '[';
	for (int i = 0; i < 70; i++)
		deep[n++] = ']';
	snprintf(deep + n, sizeof deep - n, "}");
	expect_bad(deep, "nested deeper than 64");
	CHECK(cdm_json_depth("{\"[[[[\":[1]}", 11, 64) == 2, "brackets inside strings ignored");
	CHECK(cdm_json_depth("{\"a\\\"[[\":[1]}", 13, 64) == 2, "escaped quote handled");
	json_t *j = NULL;
	struct cdm_err err = {0};
	CHECK(cdm_json_load("/nonexistent/config.json", &j, &err) == CDM_EINPUT &&
	      strstr(err.msg, "/nonexistent/config.json: cannot open"), "missing: %s", err.msg);
}

static void test_getters(void)
{
	json_t *j = parse("{\"i\": 5, \"d\": 2.5, \"di\": 3, \"b\": true, \"s\": \"x\", \"n\": null,"
			  " \"ia\": [1, 2, 3], \"sa\": [\"p\", \"q\"], \"bad\": [1, \"x\"]}");
	if (!j)
		return;
	struct cdm_err err = {0};
	int64_t i;
	double d;
	int b, st;
	const char *s;
	CHECK(cdm_json_int("c", j, "i", 9, &i, &st, &err) == 0 && i == 5 && st == CDM_JSON_SET, "int");
	CHECK(cdm_json_int("c", j, "zz", 9, &i, &st, &err) == 0 && i == 9 && st == CDM_JSON_MISSING,
	      "int default");
	CHECK(cdm_json_int("c", j, "n", 9, &i, &st, &err) == 0 && i == 9 && st == CDM_JSON_NULL,
	      "int null");
	CHECK(cdm_json_int("c", j, "d", 9, &i, &st, &err) == CDM_EINPUT &&
	      strstr(err.msg, "c: key 'd': expected an integer"), "%s", err.msg);
	CHECK(cdm_json_double("c", j, "d", 0, &d, NULL, &err) == 0 && d == 2.5, "double");
	CHECK(cdm_json_double("c", j, "di", 0, &d, NULL, &err) == 0 && d == 3.0, "int as double");
	CHECK(cdm_json_double("c", j, "s", 0, &d, NULL, &err) == CDM_EINPUT, "string as double");
	CHECK(cdm_json_bool("c", j, "b", 0, &b, &st, &err) == 0 && b == 1 && st == CDM_JSON_SET, "bool");
	CHECK(cdm_json_bool("c", j, "i", 0, &b, &st, &err) == CDM_EINPUT &&
	      strstr(err.msg, "expected true or false"), "bool type");
	CHECK(cdm_json_string("c", j, "s", "def", &s, &st, &err) == 0 && strcmp(s, "x") == 0, "string");
	CHECK(cdm_json_string("c", j, "n", "def", &s, &st, &err) == 0 && strcmp(s, "def") == 0 &&
	      st == CDM_JSON_NULL, "string null");
	int64_t arr[4], def[2] = {7, 8};
	size_t n;
	CHECK(cdm_json_int_array("c", j, "ia", def, 2, arr, 4, &n, &st, &err) == 0 && n == 3 &&
	      arr[0] == 1 && arr[2] == 3 && st == CDM_JSON_SET, "int array");
	CHECK(cdm_json_int_array("c", j, "zz", def, 2, arr, 4, &n, &st, &err) == 0 && n == 2 &&
	      arr[1] == 8 && st == CDM_JSON_MISSING, "int array default");
	CHECK(cdm_json_int_array("c", j, "ia", def, 2, arr, 2, &n, &st, &err) == CDM_EINPUT &&
	      strstr(err.msg, "3 elements, at most 2"), "too long: %s", err.msg);
	CHECK(cdm_json_int_array("config.json", j, "bad", def, 2, arr, 4, &n, &st, &err) ==
	      CDM_EINPUT && strstr(err.msg, "config.json: key 'bad': expected array of integers"),
	      "%s", err.msg);
	CHECK(cdm_json_int_array("c", j, "i", def, 2, arr, 4, &n, &st, &err) == CDM_EINPUT,
	      "scalar is not an array");
	const char *sa[4], *sdef[1] = {"z"};
	CHECK(cdm_json_str_array("c", j, "sa", sdef, 1, sa, 4, &n, &st, &err) == 0 && n == 2 &&
	      strcmp(sa[1], "q") == 0, "string array");
	CHECK(cdm_json_str_array("c", j, "n", sdef, 1, sa, 4, &n, &st, &err) == 0 && n == 1 &&
	      strcmp(sa[0], "z") == 0 && st == CDM_JSON_NULL, "string array null -> default");
	CHECK(cdm_json_str_array("c", j, "ia", sdef, 1, sa, 4, &n, &st, &err) == CDM_EINPUT &&
	      strstr(err.msg, "expected array of strings"), "%s", err.msg);
	json_decref(j);
}

int main(void)
{
	check_seed();
	test_load();
	test_getters();
	return check_done();
}
