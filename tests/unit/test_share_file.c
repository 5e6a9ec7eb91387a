/* Share files: writing three parties' shares, reading them back, every
 * validation message, set checks and reconstruction. */
#define _GNU_SOURCE
#include "../../lib/fmt/share.h"
#include "check.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static const char *config = "{\"sample_size\": 28, \"in_channels\": 1}";

static void path_of(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

/* Split secret x into x0 + x1 + x2 and write the three files prefix.0..2. */
enum { N = 6 };
static uint64_t secret[N], comp[3][N];

static void write_set(const char *prefix, const char *kind, const char *id, int frac,
		      uint64_t *rng)
{
	struct cdm_err err = {0};
	for (int i = 0; i < N; i++) {
		comp[0][i] = check_rand(rng);
		comp[1][i] = check_rand(rng);
		comp[2][i] = secret[i] - comp[0][i] - comp[1][i];
	}
	int64_t shape[2] = {2, 3};
	uint64_t one[1] = {7}, zero[1] = {0};
	for (int p = 0; p < 3; p++) {
		cdm_share_writer *w;
		CHECK(cdm_share_writer_new(&w, p, frac, id, kind, &err) == 0, "writer: %s", err.msg);
		if (!w)
			return;
		CHECK(cdm_share_writer_add(w, "x", 2, shape, comp[p], comp[(p + 1) % 3], &err) == 0,
		      "add: %s", err.msg);
		/* a scalar secret 7 = 7 + 0 + 0 */
		CHECK(cdm_share_writer_add(w, "s", 0, NULL, p == 0 ? one : zero,
					   p == 2 ? one : zero, &err) == 0, "add s");
		if (strcmp(kind, "model") == 0)
			CHECK(cdm_share_writer_meta(w, "config", config, &err) == 0, "config");
		CHECK(cdm_share_writer_meta(w, "note", "free-form", &err) == 0, "extra key");
		char path[128], name[64];
		snprintf(name, sizeof name, "%s.%d", prefix, p);
		path_of(path, sizeof path, name);
		CHECK(cdm_share_writer_save(w, path, p == 1 ? 3 : 0, &err) == 0, "save: %s", err.msg);
		cdm_share_writer_free(w);
	}
}

static cdm_share *open_ok(const char *name, const char *kind)
{
	char path[128];
	path_of(path, sizeof path, name);
	struct cdm_err err = {0};
	cdm_share *sh = NULL;
	CHECK(cdm_share_open(&sh, path, kind, &err) == 0, "open %s: %s", name, err.msg);
	return sh;
}

static void test_roundtrip(uint64_t *rng)
{
	char id[CDM_SHARE_ID_LEN + 1], id2[CDM_SHARE_ID_LEN + 1];
	struct cdm_err err = {0};
	CHECK(cdm_share_new_id(id, &err) == 0 && strlen(id) == 32, "new id");
	CHECK(cdm_share_new_id(id2, &err) == 0 && strcmp(id, id2) != 0, "ids differ");
	for (int i = 0; i < N; i++)
		secret[i] = check_rand(rng);
	write_set("model", "model", id, 20, rng);

	char path[128];
	path_of(path, sizeof path, "model.0");
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "mode 0600");

	cdm_share *sh[3] = {0};
	for (int p = 0; p < 3; p++) {
		char name[16];
		snprintf(name, sizeof name, "model.%d", p);
		sh[p] = open_ok(name, "model");
		if (!sh[p])
			return;
		CHECK(sh[p]->party == p && sh[p]->frac_bits == 20 && sh[p]->ring_bits == 64 &&
		      sh[p]->kind == CDM_SHARE_MODEL && strcmp(sh[p]->sharing_id, id) == 0,
		      "header of party %d", p);
		CHECK(sh[p]->nsecret == 2 && strcmp(sh[p]->secret[0], "s") == 0 &&
		      strcmp(sh[p]->secret[1], "x") == 0, "secret names");
		CHECK(sh[p]->version == 1 && !sh[p]->seeded[0] && !sh[p]->seeded[1] &&
		      !strcmp(cdm_share_meta(sh[p], "format"), "cdm-share/1"),
		      "no seeds: format 1, still written and read");
		const char *c = cdm_share_meta(sh[p], "config");
		CHECK(c && strcmp(c, config) == 0, "config kept");
		CHECK(cdm_share_meta(sh[p], "note") && !cdm_share_meta(sh[p], "nope"), "meta");
		const uint64_t *a, *b;
		CHECK(cdm_share_get(sh[p], "x", 2, (int64_t[]){2, 3}, &a, &b, &err) == 0 &&
		      memcmp(a, comp[p], sizeof comp[p]) == 0 &&
		      memcmp(b, comp[(p + 1) % 3], sizeof comp[p]) == 0, "components of party %d", p);
		CHECK(cdm_share_get(sh[p], "x", 1, (int64_t[]){6}, &a, &b, &err) == CDM_EINPUT &&
		      strstr(err.msg, "shape [2,3], expected [6]"), "shape check: %s", err.msg);
		CHECK(cdm_share_get(sh[p], "y", 1, (int64_t[]){6}, &a, &b, &err) == CDM_EINPUT &&
		      strstr(err.msg, "no secret tensor 'y'"), "absent: %s", err.msg);
		const struct cdm_st_tensor *t = cdm_share_find(sh[p], "x");
		CHECK(t && t->ndim == 2 && t->numel == 6, "find");
	}
	CHECK(cdm_share_check_set(sh, 3, &err) == 0, "set of 3: %s", err.msg);
	uint64_t *x = NULL;
	for (int skip = -1; skip < 3; skip++) { /* all three, then each pair */
		cdm_share *set[3];
		size_t n = 0;
		for (int p = 0; p < 3; p++)
			if (p != skip)
				set[n++] = sh[(p + 1) % 3]; /* any order */
		CHECK(cdm_share_reconstruct(set, n, "x", &x, &err) == 0 &&
		      memcmp(x, secret, sizeof secret) == 0, "reconstruct without %d: %s", skip,
		      err.msg);
		cdm_free(x);
		CHECK(cdm_share_reconstruct(set, n, "s", &x, &err) == 0 && x[0] == 7, "scalar");
		cdm_free(x);
	}
	/* sets that must be refused */
	cdm_share *dup[2] = {sh[1], sh[1]};
	CHECK(cdm_share_check_set(dup, 2, &err) == CDM_EINPUT && strstr(err.msg, "model.1 given twice"),
	      "twice: %s", err.msg);
	CHECK(cdm_share_check_set(sh, 1, &err) == CDM_EINPUT && strstr(err.msg, "need 2 or 3"),
	      "one file: %s", err.msg);

	/* another sharing of the same kind */
	write_set("other", "model", id2, 20, rng);
	cdm_share *o1 = open_ok("other.1", NULL);
	cdm_share *mix[2] = {sh[0], o1};
	CHECK(cdm_share_check_set(mix, 2, &err) == CDM_EINPUT &&
	      strstr(err.msg, "model.0 and ") && strstr(err.msg, "other.1 belong to different sharings"),
	      "different sharings: %s", err.msg);
	/* same id, different frac bits / kind (forged, but must be caught) */
	write_set("f16", "model", id, 16, rng);
	cdm_share *f1 = open_ok("f16.1", NULL);
	cdm_share *mf[2] = {sh[0], f1};
	CHECK(cdm_share_check_set(mf, 2, &err) == CDM_EINPUT &&
	      strstr(err.msg, "different fraction bits (20, 16)"), "frac: %s", err.msg);
	/* three files of which the third mixes in a different split: the
	 * redundant components disagree */
	cdm_share *f0 = open_ok("f16.0", NULL);
	write_set("in", "input", id, 20, rng);
	cdm_share *i2 = open_ok("in.2", "input");
	cdm_share *mk[2] = {sh[0], i2};
	CHECK(cdm_share_check_set(mk, 2, &err) == CDM_EINPUT &&
	      strstr(err.msg, "is a model share but") && strstr(err.msg, "is an input share"),
	      "kind: %s", err.msg);
	cdm_share_close(i2);
	write_set("re", "model", id, 20, rng); /* same id and secret, new randomness */
	cdm_share *r2 = open_ok("re.2", "model");
	cdm_share *dis[3] = {sh[0], sh[1], r2};
	CHECK(cdm_share_reconstruct(dis, 3, "x", &x, &err) == CDM_EINPUT &&
	      strstr(err.msg, "disagree on component"), "disagree: %s", err.msg);
	cdm_share *pair[2] = {sh[0], r2}; /* a pair can't tell; still a valid set */
	CHECK(cdm_share_check_set(pair, 2, &err) == 0, "pair ok");
	cdm_share_close(r2);
	cdm_share_close(f0);
	cdm_share_close(f1);
	cdm_share_close(o1);
	for (int p = 0; p < 3; p++)
		cdm_share_close(sh[p]);
}

/* Build a raw safetensors file with given metadata and tensors. */
static void expect_bad(const char *meta_json, const char *tensors_json, size_t dlen,
		       const char *kind, const char *sub)
{
	char hdr[2048];
	snprintf(hdr, sizeof hdr, "{\"__metadata__\":%s%s%s}", meta_json, *tensors_json ? "," : "",
		 tensors_json);
	size_t hl = strlen(hdr);
	uint8_t buf[4096] = {0};
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
	memcpy(buf + 8, hdr, hl);
	struct cdm_err err = {0};
	cdm_share *sh = NULL;
	int rc = cdm_share_open_mem(&sh, buf, 8 + hl + dlen, "model.1", kind, &err);
	CHECK(rc == CDM_EINPUT && !sh, "%s: rc %d", sub, rc);
	CHECK(strstr(err.msg, sub) && strncmp(err.msg, "model.1", 7) == 0, "message '%s' lacks '%s'",
	      err.msg, sub);
	cdm_share_close(sh);
}

#define ID "\"sharing_id\":\"0123456789abcdef0123456789abcdef\""
#define GOOD_META(kind) \
	"{\"format\":\"cdm-share/1\",\"party\":\"1\",\"ring_bits\":\"64\",\"frac_bits\":\"20\"," \
	ID ",\"kind\":\"" kind "\",\"config\":\"{}\"}"
#define PAIR "\"x.a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}," \
	"\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[8,16]}"

static void test_validation(void)
{
	expect_bad("{\"format\":\"pt\"}", "", 0, NULL, "not a share file (format 'pt'");
	expect_bad("{}", "", 0, NULL, "not a share file (no 'format'");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"3\"}", "", 0, NULL,
		   "party '3' out of range (0..2)");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"01\"}", "", 0, NULL, "party '01'");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"-1\"}", "", 0, NULL, "party '-1'");
	expect_bad("{\"format\":\"cdm-share/1\"}", "", 0, NULL, "party '(missing)'");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"32\"}", "", 0, NULL,
		   "ring_bits '32' unsupported");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"40\"}", "", 0, NULL, "frac_bits '40' out of range");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"x\"}", "", 0, NULL, "frac_bits 'x' out of range");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"20\",\"sharing_id\":\"0123456789ABCDEF0123456789abcdef\"}", "", 0,
		   NULL, "is not 32 lowercase hex digits");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"20\"," ID ",\"kind\":\"weights\"}", "", 0, NULL,
		   "kind 'weights' unknown");
	expect_bad(GOOD_META("input"), PAIR, 16, "model", "model.1: is an input share, expected a model share");
	expect_bad(GOOD_META("model"), PAIR, 16, "output", "is a model share, expected an output share");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"20\"," ID ",\"kind\":\"model\"}", "", 0, NULL,
		   "model share without 'config'");
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"0\",\"ring_bits\":\"64\","
		   "\"frac_bits\":\"20\"," ID ",\"kind\":\"model\",\"config\":\"{oops\"}", "", 0, NULL,
		   "metadata 'config': line 1");
	expect_bad(GOOD_META("model"),
		   "\"x.a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x.a' has no .b partner");
	expect_bad(GOOD_META("model"),
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x.b' has no .a partner");
	expect_bad(GOOD_META("model"),
		   "\"x.a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]},"
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1,1],\"data_offsets\":[8,16]}", 16, NULL,
		   "differ in shape");
	expect_bad(GOOD_META("model"),
		   "\"x\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x' is not a share component");
	expect_bad(GOOD_META("model"),
		   "\"x.a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[8,16]}", 16, NULL,
		   "tensor 'x.a': dtype F32, shares are U64");
	/* the good one is accepted, with unaligned data copied */
	const char *hdr = "{\"__metadata__\":" GOOD_META("model") "," PAIR "}";
	size_t hl = strlen(hdr); /* deliberately not padded to 8 */
	CHECK((8 + hl) % 8 != 0, "test data must be unaligned (header %zu bytes)", hl);
	uint8_t buf[1024] = {0};
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
	memcpy(buf + 8, hdr, hl);
	buf[8 + hl] = 5;
	buf[8 + hl + 8] = 9;
	struct cdm_err err = {0};
	cdm_share *sh = NULL;
	CHECK(cdm_share_open_mem(&sh, buf, 8 + hl + 16, "good", "model", &err) == 0, "good: %s",
	      err.msg);
	if (sh) {
		const uint64_t *a, *b;
		CHECK(cdm_share_get(sh, "x", 1, (int64_t[]){1}, &a, &b, &err) == 0 && *a == 5 &&
		      *b == 9 && ((uintptr_t)a & 7) == 0 && ((uintptr_t)b & 7) == 0,
		      "unaligned components copied: %s", err.msg);
	}
	cdm_share_close(sh);
}

static void test_writer_refusals(void)
{
	struct cdm_err err = {0};
	cdm_share_writer *w = NULL;
	const char *id = "0123456789abcdef0123456789abcdef";
	CHECK(cdm_share_writer_new(&w, 3, 20, id, "model", &err) == CDM_EINPUT, "party 3");
	CHECK(cdm_share_writer_new(&w, 0, 99, id, "model", &err) == CDM_EINPUT, "frac 99");
	CHECK(cdm_share_writer_new(&w, 0, 20, "xyz", "model", &err) == CDM_EINPUT, "bad id");
	CHECK(cdm_share_writer_new(&w, 0, 20, id, "weights", &err) == CDM_EINPUT, "bad kind");
	CHECK(cdm_share_writer_new(&w, 0, 20, id, "model", &err) == 0, "ok");
	CHECK(cdm_share_writer_meta(w, "party", "2", &err) == CDM_EINPUT &&
	      strstr(err.msg, "reserved"), "reserved key: %s", err.msg);
	CHECK(cdm_share_writer_meta(w, "config", "[1,", &err) == CDM_EINPUT, "bad config JSON");
	char path[128];
	path_of(path, sizeof path, "noconfig.0");
	CHECK(cdm_share_writer_save(w, path, 0, &err) == CDM_EINPUT &&
	      strstr(err.msg, "needs the 'config'"), "model without config: %s", err.msg);
	CHECK(access(path, F_OK) != 0, "nothing written");
	uint64_t v = 1;
	CHECK(cdm_share_writer_add(w, "", 0, NULL, &v, &v, &err) == CDM_EINPUT, "empty name");
	cdm_share_writer_free(w);
}

/* ---- format 2: seeded components ------------------------------------------ */

#define SEEDED_META(party, seeds, secrets) \
	"{\"format\":\"cdm-share/2\",\"party\":\"" party "\",\"ring_bits\":\"64\"," \
	"\"frac_bits\":\"20\"," ID ",\"kind\":\"model\",\"config\":\"{}\"" seeds secrets "}"
#define SEED_A ",\"seed_a\":\"000102030405060708090a0b0c0d0e0f\""
#define SEED_B ",\"seed_b\":\"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\""
#define SECRETS_X1 ",\"secrets\":\"{\\\"x\\\":[1]}\""

/* The layout of lib/sample's model shares: x_0, x_1 from seeds k0, k1;
 * party 0 (k0, k1), party 1 (k1, x_2), party 2 (x_2, k0). Reading back,
 * any two files reconstruct x, and all three agree. */
static void test_seeded(uint64_t *rng)
{
	struct cdm_err err = {0};
	char id[CDM_SHARE_ID_LEN + 1], path[128], name[64];
	uint8_t k[2][16];
	enum { M = 1000 };
	static uint64_t x[M], x0[M], x1[M], x2[M];
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < 16; i++)
			k[j][i] = (uint8_t)check_rand(rng);
	for (int i = 0; i < M; i++)
		x[i] = check_rand(rng);
	CHECK(cdm_share_new_id(id, &err) == 0, "id");
	CHECK(cdm_share_seed_expand(k[0], "w", x0, M, &err) == 0 &&
	      cdm_share_seed_expand(k[1], "w", x1, M, &err) == 0, "expand: %s", err.msg);
	uint64_t again[M], other[M];
	CHECK(cdm_share_seed_expand(k[0], "w", again, M, &err) == 0 &&
	      !memcmp(again, x0, sizeof again), "expansion is deterministic");
	CHECK(cdm_share_seed_expand(k[0], "w2", other, M, &err) == 0 &&
	      memcmp(other, x0, sizeof other) && memcmp(x1, x0, sizeof x1),
	      "other names and seeds give other streams");
	for (int i = 0; i < M; i++)
		x2[i] = x[i] - x0[i] - x1[i];
	const uint8_t *sa[3] = {k[0], k[1], NULL}, *sb[3] = {k[1], NULL, k[0]};
	const uint64_t *ca[3] = {NULL, NULL, x2}, *cb[3] = {NULL, x2, NULL};
	uint64_t v7[1] = {7};
	for (int p = 0; p < 3; p++) {
		cdm_share_writer *w = NULL;
		CHECK(cdm_share_writer_new(&w, p, 20, id, "model", &err) == 0, "writer");
		if (!w)
			return;
		CHECK(cdm_share_writer_seeds(w, sa[p], sb[p], &err) == 0, "seeds: %s", err.msg);
		CHECK(cdm_share_writer_add(w, "w", 2, (int64_t[]){10, 100}, ca[p], cb[p], &err) == 0,
		      "add: %s", err.msg);
		CHECK(cdm_share_writer_add(w, "w", 1, (int64_t[]){1}, v7, v7, &err) == CDM_EINPUT,
		      "a name twice is refused");
		CHECK(cdm_share_writer_seeds(w, k[0], NULL, &err) == CDM_EINTERNAL,
		      "seeds after tensors refused");
		CHECK(cdm_share_writer_meta(w, "seed_b", "00", &err) == CDM_EINPUT &&
		      cdm_share_writer_meta(w, "secrets", "{}", &err) == CDM_EINPUT,
		      "seed keys are reserved");
		CHECK(cdm_share_writer_meta(w, "config", config, &err) == 0, "config");
		snprintf(name, sizeof name, "seeded.%d", p);
		path_of(path, sizeof path, name);
		CHECK(cdm_share_writer_save(w, path, 0, &err) == 0, "save: %s", err.msg);
		cdm_share_writer_free(w);
	}
	struct stat sb0, sb1;
	path_of(path, sizeof path, "seeded.0");
	CHECK(stat(path, &sb0) == 0 && sb0.st_size < 2048, "party 0 stores no data (%lld bytes)",
	      (long long)sb0.st_size);
	path_of(path, sizeof path, "seeded.1");
	CHECK(stat(path, &sb1) == 0 && sb1.st_size >= 8 * M && sb1.st_size < 8 * M + 2048,
	      "party 1 stores one component (%lld bytes)", (long long)sb1.st_size);
	cdm_share *sh[3] = {0};
	for (int p = 0; p < 3; p++) {
		snprintf(name, sizeof name, "seeded.%d", p);
		sh[p] = open_ok(name, "model");
	}
	if (!sh[0] || !sh[1] || !sh[2])
		goto out;
	CHECK(sh[0]->version == 2 && sh[0]->seeded[0] && sh[0]->seeded[1] && sh[1]->seeded[0] &&
	      !sh[1]->seeded[1] && !sh[2]->seeded[0] && sh[2]->seeded[1], "seeded flags");
	/* each file holds only its own components' seeds: k0 never at party 1,
	 * k1 never at party 2 */
	CHECK(!memcmp(sh[1]->seed[0], k[1], 16) && !memcmp(sh[2]->seed[1], k[0], 16) &&
	      !memcmp(sh[0]->seed[0], k[0], 16) && !memcmp(sh[0]->seed[1], k[1], 16), "seeds");
	for (int p = 0; p < 3; p++) {
		const struct cdm_st_tensor *t = cdm_share_find(sh[p], "w");
		CHECK(sh[p]->nsecret == 1 && !strcmp(sh[p]->secret[0], "w") && t && t->ndim == 2 &&
		      t->shape[0] == 10 && t->shape[1] == 100 && t->numel == M, "party %d: index", p);
		const uint64_t *a, *b;
		const uint64_t *want[3] = {x0, x1, x2};
		CHECK(cdm_share_get(sh[p], "w", 2, (int64_t[]){10, 100}, &a, &b, &err) == 0 &&
		      !memcmp(a, want[p], sizeof x) && !memcmp(b, want[(p + 1) % 3], sizeof x),
		      "party %d: components x_%d, x_%d: %s", p, p, (p + 1) % 3, err.msg);
		const uint64_t *a2, *b2;
		CHECK(cdm_share_get(sh[p], "w", 2, (int64_t[]){10, 100}, &a2, &b2, &err) == 0 &&
		      a2 == a && b2 == b, "party %d: a second get returns the same buffers", p);
		CHECK(cdm_share_get(sh[p], "w", 1, (int64_t[]){M}, &a, &b, &err) == CDM_EINPUT,
		      "party %d: wrong shape refused", p);
	}
	cdm_share *two[2] = {sh[2], sh[0]};
	uint64_t *r = NULL;
	CHECK(cdm_share_reconstruct(two, 2, "w", &r, &err) == 0 && r && !memcmp(r, x, sizeof x),
	      "two seeded files reconstruct: %s", err.msg);
	cdm_free(r);
	r = NULL;
	CHECK(cdm_share_reconstruct(sh, 3, "w", &r, &err) == 0 && r && !memcmp(r, x, sizeof x),
	      "three seeded files reconstruct and agree: %s", err.msg);
	cdm_free(r);
out:
	for (int p = 0; p < 3; p++)
		cdm_share_close(sh[p]);
}

static void test_seeded_validation(void)
{
	expect_bad("{\"format\":\"cdm-share/3\"}", "", 0, NULL,
		   "share format 'cdm-share/3' unsupported (this build reads cdm-share/1 and "
		   "cdm-share/2)");
	expect_bad(SEEDED_META("0", ",\"seed_a\":\"00\"", ""), "", 0, NULL,
		   "metadata 'seed_a' is not 32 lowercase hex digits");
	expect_bad(SEEDED_META("0", SEED_A SEED_B, ""), "", 0, NULL,
		   "seeded share without a 'secrets' index");
	expect_bad(SEEDED_META("0", SEED_A SEED_B, ",\"secrets\":\"[1]\""), "", 0, NULL,
		   "metadata 'secrets': top level is not a JSON object");
	expect_bad(SEEDED_META("0", SEED_A SEED_B, ",\"secrets\":\"{\\\"x\\\":[-1]}\""), "", 0,
		   NULL, "tensor 'x' has a bad dimension");
	expect_bad(SEEDED_META("0", SEED_A SEED_B, SECRETS_X1),
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x.b' stored, but component b is seeded");
	expect_bad(SEEDED_META("1", SEED_A, SECRETS_X1),
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[2],\"data_offsets\":[0,16]}", 16, NULL,
		   "tensor 'x' differs in shape from the 'secrets' index");
	expect_bad(SEEDED_META("1", SEED_A, ",\"secrets\":\"{\\\"x\\\":[1],\\\"y\\\":[1]}\""),
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "the 'secrets' index lists 2 tensors, the file stores 1");
	expect_bad(SEEDED_META("1", SEED_A, SECRETS_X1),
		   "\"x.a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x.a' stored, but component a is seeded");
	/* format 1 ignores seed keys (free-form there) and needs both components */
	expect_bad("{\"format\":\"cdm-share/1\",\"party\":\"1\",\"ring_bits\":\"64\",\"frac_bits\":"
		   "\"20\"," ID ",\"kind\":\"model\",\"config\":\"{}\"" SEED_A SECRETS_X1 "}",
		   "\"x.b\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}", 8, NULL,
		   "tensor 'x.b' has no .a partner");
}

int main(void)
{
	uint64_t rng = check_seed();
	snprintf(dir, sizeof dir, "/tmp/cdm-test-share.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_roundtrip(&rng);
	test_validation();
	test_writer_refusals();
	test_seeded(&rng);
	test_seeded_validation();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_done();
}
