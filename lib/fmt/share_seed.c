/*
 * fmt/share_seed: seed-derived components of share files (format
 * cdm-share/2, see share.h) -- the header keys, the index of secret shapes,
 * and the expansion of a seeded component. share.c calls in at open, find
 * and get; the writer side is in share.c (it owns the writer struct).
 */
#include "share_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../prg/prg.h"
#include "json.h"

int cdm_share_seed_expand(const uint8_t seed[CDM_SEED_BYTES], const char *name, uint64_t *out,
			  size_t n, struct cdm_err *err)
{
	/* The tensor's key is a PRF of the component seed and its name, so any
	 * tensor expands alone and distinct names get independent streams. */
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!HMAC(EVP_sha256(), seed, CDM_SEED_BYTES, (const unsigned char *)name, strlen(name),
		  mac, &len) || len < CDM_SEED_BYTES)
		return cdm_fail(err, CDM_EINTERNAL, "tensor '%.80s': HMAC-SHA256 unavailable", name);
	cdm_prg g = {0};
	int rc = cdm_prg_init(&g, mac, err);
	if (rc == 0)
		cdm_prg_u64(&g, out, n);
	cdm_prg_free(&g);
	memset(mac, 0, sizeof mac);
	return rc;
}

static int hex_seed(const char *s, uint8_t out[CDM_SEED_BYTES])
{
	if (!s || strlen(s) != 2 * CDM_SEED_BYTES)
		return -1;
	for (int i = 0; i < 2 * CDM_SEED_BYTES; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

int cdm_share_seed_header(cdm_share *sh, const char *format, struct cdm_err *err)
{
	static const char prefix[] = "cdm-share/";
	const char *p = sh->path;
	if (strcmp(format, CDM_SHARE_FORMAT) == 0) {
		sh->version = 1;
		return 0;
	}
	if (strcmp(format, CDM_SHARE_FORMAT_SEEDED) != 0) {
		if (strncmp(format, prefix, sizeof prefix - 1) == 0)
			return cdm_fail(err, CDM_EINPUT, "%s: share format '%.40s' unsupported (this "
					"build reads %s and %s)", p, format, CDM_SHARE_FORMAT,
					CDM_SHARE_FORMAT_SEEDED);
		return cdm_fail(err, CDM_EINPUT, "%s: not a share file (format '%.40s', expected "
				"'%s' or '%s')", p, format, CDM_SHARE_FORMAT, CDM_SHARE_FORMAT_SEEDED);
	}
	sh->version = 2;
	static const char *const keys[2] = {"seed_a", "seed_b"};
	for (int c = 0; c < 2; c++) {
		const char *v = cdm_st_meta(sh->st, keys[c]);
		if (!v)
			continue;
		if (hex_seed(v, sh->seed[c]) < 0)
			return cdm_fail(err, CDM_EINPUT, "%s: metadata '%s' is not %d lowercase hex "
					"digits", p, keys[c], 2 * CDM_SEED_BYTES);
		sh->seeded[c] = 1;
	}
	return 0;
}

static int virt_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cdm_st_tensor *)a)->name,
		      ((const struct cdm_st_tensor *)b)->name);
}

/* One "secrets" entry: NAME -> [d0, d1, ...] into *t. */
static int index_entry(const cdm_share *sh, const char *name, json_t *dims,
		       struct cdm_st_tensor *t, struct cdm_err *err)
{
	size_t nd = json_is_array(dims) ? json_array_size(dims) : 0;
	if (!*name || !json_is_array(dims) || nd > CDM_ST_MAX_DIMS)
		return cdm_fail(err, CDM_EINPUT, "%s: metadata 'secrets': entry '%.80s' is not "
				"a name and a list of at most %d dimensions", sh->path, name,
				CDM_ST_MAX_DIMS);
	t->ndim = (int)nd;
	t->numel = 1;
	t->dtype = CDM_U64;
	for (size_t i = 0; i < nd; i++) {
		json_t *d = json_array_get(dims, i);
		json_int_t v = json_is_integer(d) ? json_integer_value(d) : -1;
		if (v < 0 || v > ((json_int_t)1 << 40) ||
		    (v && t->numel > ((uint64_t)1 << 40) / (uint64_t)v))
			return cdm_fail(err, CDM_EINPUT, "%s: metadata 'secrets': tensor '%.80s' has "
					"a bad dimension", sh->path, name);
		t->shape[i] = v;
		t->numel *= (uint64_t)v;
	}
	t->nbytes = 8 * t->numel;
	return (t->name = strdup(name)) ? 0 : cdm_fail(err, CDM_ENOMEM, "%s: out of memory",
						       sh->path);
}

/* Stored components must be exactly the indexed secrets, shapes alike. */
static int index_agrees(const cdm_share *sh, struct cdm_err *err)
{
	for (size_t i = 0; i < sh->nsecret; i++) {
		struct cdm_st_tensor key = {.name = (char *)sh->secret[i]};
		const struct cdm_st_tensor *v = bsearch(&key, sh->virt, sh->nvirt, sizeof key,
							 virt_cmp);
		const struct cdm_st_tensor *t = cdm_share_find(sh, sh->secret[i]);
		int same = v && t && v->ndim == t->ndim &&
			   !memcmp(v->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
		if (!same)
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s' %s the 'secrets' index",
					sh->path, sh->secret[i], v ? "differs in shape from" : "is not in");
	}
	if (sh->nsecret != sh->nvirt)
		return cdm_fail(err, CDM_EINPUT, "%s: the 'secrets' index lists %zu tensors, the "
				"file stores %zu", sh->path, sh->nvirt, sh->nsecret);
	return 0;
}

int cdm_share_seed_index(cdm_share *sh, struct cdm_err *err)
{
	if (!sh->seeded[0] && !sh->seeded[1])
		return 0;
	const char *v = cdm_st_meta(sh->st, "secrets");
	if (!v)
		return cdm_fail(err, CDM_EINPUT, "%s: seeded share without a 'secrets' index",
				sh->path);
	char what[200];
	snprintf(what, sizeof what, "%s: metadata 'secrets'", sh->path);
	json_t *j;
	CDM_TRY(cdm_json_parse(v, strlen(v), what, &j, err));
	int rc = json_is_object(j) ? 0 : cdm_fail(err, CDM_EINPUT, "%s is not an object", what);
	size_t n = rc == 0 ? json_object_size(j) : 0;
	if (rc == 0 && (!(sh->virt = calloc(n + 1, sizeof *sh->virt)) ||
			!(sh->expanded = calloc(2 * n + 2, sizeof *sh->expanded))))
		rc = cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	const char *name;
	json_t *dims;
	json_object_foreach(j, name, dims) {
		if (rc < 0)
			break;
		rc = index_entry(sh, name, dims, &sh->virt[sh->nvirt], err);
		if (rc == 0)
			sh->nvirt++;
	}
	json_decref(j);
	CDM_TRY(rc);
	qsort(sh->virt, sh->nvirt, sizeof *sh->virt, virt_cmp);
	if (!(sh->seeded[0] && sh->seeded[1]))
		return index_agrees(sh, err);
	if (sh->nsecret)
		return cdm_fail(err, CDM_EINPUT, "%s: both components are seeded but tensors are "
				"stored", sh->path);
	/* nothing stored: the index is the list of secrets */
	const char **s = realloc(sh->secret, (sh->nvirt + 1) * sizeof *s);
	if (!s)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	sh->secret = s;
	for (size_t i = 0; i < sh->nvirt; i++) {
		if (!(s[i] = strdup(sh->virt[i].name)))
			return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
		sh->nsecret++;
	}
	return 0;
}

const struct cdm_st_tensor *cdm_share_seed_find(const cdm_share *sh, const char *name)
{
	struct cdm_st_tensor key = {.name = (char *)name};
	return sh->nvirt ? bsearch(&key, sh->virt, sh->nvirt, sizeof key, virt_cmp) : NULL;
}

int cdm_share_seed_comp(cdm_share *sh, const char *name, int c, int ndim, const int64_t *shape,
			const uint64_t **out, struct cdm_err *err)
{
	const struct cdm_st_tensor *t = cdm_share_seed_find(sh, name);
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no secret tensor '%.80s'", sh->path, name);
	void **cached = &sh->expanded[2 * (size_t)(t - sh->virt) + (size_t)c];
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char have[160], want[160];
		return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': shape %s, expected %s",
				sh->path, name, cdm_st_shape_str(have, sizeof have, t->ndim, t->shape),
				cdm_st_shape_str(want, sizeof want, ndim, shape));
	}
	if (*cached) { /* expanded once: a weight is never held twice */
		*out = *cached;
		return 0;
	}
	void **o = realloc(sh->owned, (sh->nowned + 1) * sizeof *o);
	if (!o)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	sh->owned = o;
	uint64_t *x = cdm_alloc(t->numel ? t->numel : 1, 8, err);
	if (!x)
		return cdm_err_prefix(err, "%s: tensor '%.80s': ", sh->path, name);
	int rc = cdm_share_seed_expand(sh->seed[c], name, x, t->numel, err);
	if (rc < 0) {
		cdm_free(x);
		return rc;
	}
	sh->owned[sh->nowned++] = x;
	*cached = x;
	*out = x;
	return 0;
}

void cdm_share_seed_clear(cdm_share *sh)
{
	for (size_t i = 0; i < sh->nvirt; i++)
		free(sh->virt[i].name);
	free(sh->virt);
	free(sh->expanded); /* its buffers are in sh->owned */
	memset(sh->seed, 0, sizeof sh->seed);
}
