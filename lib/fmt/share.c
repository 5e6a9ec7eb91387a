/* fmt/share: share-file layout, validation, sets and writing (see share.h). */
#include "share.h"
#include "json.h"
#include "share_impl.h"

#include "../prg/prg.h"
#include "../ring/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[CDM_SHARE_KIND_COUNT] = {
	[CDM_SHARE_MODEL] = "model", [CDM_SHARE_INPUT] = "input",
	[CDM_SHARE_OUTPUT] = "output", [CDM_SHARE_CHECKPOINT] = "checkpoint",
};

/* Keys the writer sets itself. */
static const char *const reserved_keys[] = {"format", "party", "ring_bits", "frac_bits",
					    "sharing_id", "kind", "seed_a", "seed_b", "secrets"};

const char *cdm_share_kind_name(enum cdm_share_kind k)
{
	return (unsigned)k < CDM_SHARE_KIND_COUNT ? kind_names[k] : "?";
}

int cdm_share_kind_parse(const char *s, enum cdm_share_kind *out)
{
	for (int i = 0; s && i < CDM_SHARE_KIND_COUNT; i++)
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum cdm_share_kind)i;
			return 0;
		}
	return -1;
}

/* "an input share", "a model share" */
static const char *article(enum cdm_share_kind k)
{
	return k == CDM_SHARE_INPUT || k == CDM_SHARE_OUTPUT ? "an" : "a";
}

static int valid_id(const char *s)
{
	if (!s || strlen(s) != CDM_SHARE_ID_LEN)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* Strict small decimal: digits only, no sign, no leading zeros, <= 9999. */
static int parse_small(const char *s, int *out)
{
	if (!s || !*s || strlen(s) > 4 || (s[0] == '0' && s[1]))
		return -1;
	int v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	return 0;
}

/* Share files name their components NAME.a / NAME.b. */
static int component(const char *name)
{
	size_t n = strlen(name);
	if (n < 3 || name[n - 2] != '.')
		return 0;
	return name[n - 1] == 'a' ? 'a' : name[n - 1] == 'b' ? 'b' : 0;
}

static const struct cdm_st_tensor *partner(const cdm_st *st, const char *name, char c)
{
	size_t n = strlen(name);
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, name, n + 1);
	p[n - 1] = c;
	const struct cdm_st_tensor *t = cdm_st_find(st, p);
	free(p);
	return t;
}

static int same_shape(const struct cdm_st_tensor *x, const struct cdm_st_tensor *y)
{
	if (x->ndim != y->ndim)
		return 0;
	for (int i = 0; i < x->ndim; i++)
		if (x->shape[i] != y->shape[i])
			return 0;
	return 1;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_json_meta(const cdm_share *sh, const char *key, int required,
			   struct cdm_err *err)
{
	const char *v = cdm_st_meta(sh->st, key);
	if (!v)
		return required ? cdm_fail(err, CDM_EINPUT,
					   "%s: model share without '%s' in its metadata",
					   sh->path, key)
				: 0;
	char what[200];
	snprintf(what, sizeof what, "%s: metadata '%s'", sh->path, key);
	json_t *j;
	CDM_TRY(cdm_json_parse(v, strlen(v), what, &j, err));
	json_decref(j);
	return 0;
}

static int check_header(cdm_share *sh, const char *expected_kind, struct cdm_err *err)
{
	const char *p = sh->path, *v = cdm_st_meta(sh->st, "format");
	if (!v)
		return cdm_fail(err, CDM_EINPUT, "%s: not a share file (no 'format' in __metadata__)", p);
	CDM_TRY(cdm_share_seed_header(sh, v, err));
	v = cdm_st_meta(sh->st, "party");
	if (parse_small(v, &sh->party) < 0 || sh->party > 2)
		return cdm_fail(err, CDM_EINPUT, "%s: party '%.20s' out of range (0..2)", p,
				v ? v : "(missing)");
	v = cdm_st_meta(sh->st, "ring_bits");
	if (parse_small(v, &sh->ring_bits) < 0 || sh->ring_bits != 64)
		return cdm_fail(err, CDM_EINPUT, "%s: ring_bits '%.20s' unsupported (only 64)", p,
				v ? v : "(missing)");
	v = cdm_st_meta(sh->st, "frac_bits");
	if (parse_small(v, &sh->frac_bits) < 0 || sh->frac_bits < CDM_FRAC_BITS_MIN ||
	    sh->frac_bits > CDM_FRAC_BITS_MAX)
		return cdm_fail(err, CDM_EINPUT, "%s: frac_bits '%.20s' out of range (%d..%d)", p,
				v ? v : "(missing)", CDM_FRAC_BITS_MIN, CDM_FRAC_BITS_MAX);
	v = cdm_st_meta(sh->st, "sharing_id");
	if (!valid_id(v))
		return cdm_fail(err, CDM_EINPUT, "%s: sharing_id '%.40s' is not %d lowercase hex digits",
				p, v ? v : "(missing)", CDM_SHARE_ID_LEN);
	memcpy(sh->sharing_id, v, CDM_SHARE_ID_LEN + 1);
	v = cdm_st_meta(sh->st, "kind");
	if (cdm_share_kind_parse(v, &sh->kind) < 0)
		return cdm_fail(err, CDM_EINPUT,
				"%s: kind '%.20s' unknown (model, input, output or checkpoint)", p,
				v ? v : "(missing)");
	if (expected_kind) {
		enum cdm_share_kind want;
		if (cdm_share_kind_parse(expected_kind, &want) < 0)
			return cdm_fail(err, CDM_EINTERNAL, "unknown share kind '%s'", expected_kind);
		if (want != sh->kind)
			return cdm_fail(err, CDM_EINPUT, "%s: is %s %s share, expected %s %s share", p,
					article(sh->kind), kind_names[sh->kind], article(want),
					kind_names[want]);
	}
	if (sh->kind == CDM_SHARE_MODEL) {
		CDM_TRY(check_json_meta(sh, "config", 1, err));
		CDM_TRY(check_json_meta(sh, "scheduler_config", 0, err));
	}
	return 0;
}

/* Every tensor is U64 NAME.a or NAME.b with its partner of the same shape. */
static int check_tensors(cdm_share *sh, struct cdm_err *err)
{
	size_t n = cdm_st_count(sh->st);
	sh->secret = calloc(n + 1, sizeof *sh->secret);
	if (!sh->secret)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	for (size_t i = 0; i < n; i++) {
		const struct cdm_st_tensor *t = cdm_st_at(sh->st, i);
		int c = component(t->name);
		if (!c)
			return cdm_fail(err, CDM_EINPUT,
					"%s: tensor '%.80s' is not a share component (NAME.a or NAME.b)",
					sh->path, t->name);
		if (t->dtype != CDM_U64)
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': dtype %s, shares are U64",
					sh->path, t->name, cdm_dtype_name(t->dtype));
		const struct cdm_st_tensor *o = partner(sh->st, t->name, c == 'a' ? 'b' : 'a');
		if (sh->seeded[c == 'b'])
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s' stored, but component "
					"%c is seeded", sh->path, t->name, c);
		if (!o && !sh->seeded[c == 'a'])
			return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s' has no .%c partner",
					sh->path, t->name, c == 'a' ? 'b' : 'a');
		if (o && !same_shape(t, o))
			return cdm_fail(err, CDM_EINPUT,
					"%s: tensor '%.80s' and its .%c partner differ in shape",
					sh->path, t->name, c == 'a' ? 'b' : 'a');
		if (c == 'a' || !o) {
			/* the name without ".a": the .a tensor's own name, cut short */
			char *s = strdup(t->name);
			if (!s)
				return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
			s[strlen(s) - 2] = '\0';
			sh->secret[sh->nsecret++] = s;
		}
	}
	qsort(sh->secret, sh->nsecret, sizeof *sh->secret, str_cmp);
	return 0;
}

static int share_finish(cdm_share **out, cdm_share *sh, const char *expected_kind,
			struct cdm_err *err)
{
	sh->path = cdm_st_path(sh->st);
	int rc = check_header(sh, expected_kind, err);
	if (rc == 0)
		rc = check_tensors(sh, err);
	if (rc == 0)
		rc = cdm_share_seed_index(sh, err);
	if (rc < 0) {
		cdm_share_close(sh);
		return rc;
	}
	*out = sh;
	return 0;
}

int cdm_share_open(cdm_share **out, const char *path, const char *expected_kind,
		   struct cdm_err *err)
{
	*out = NULL;
	cdm_share *sh = calloc(1, sizeof *sh);
	if (!sh)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
	int rc = cdm_st_open(&sh->st, path, err);
	if (rc < 0) {
		free(sh);
		return rc;
	}
	return share_finish(out, sh, expected_kind, err);
}

int cdm_share_open_mem(cdm_share **out, const void *buf, size_t len, const char *what,
		       const char *expected_kind, struct cdm_err *err)
{
	*out = NULL;
	cdm_share *sh = calloc(1, sizeof *sh);
	if (!sh)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", what);
	int rc = cdm_st_open_mem(&sh->st, buf, len, what, err);
	if (rc < 0) {
		free(sh);
		return rc;
	}
	return share_finish(out, sh, expected_kind, err);
}

void cdm_share_close(cdm_share *sh)
{
	if (!sh)
		return;
	for (size_t i = 0; i < sh->nsecret; i++)
		free((void *)sh->secret[i]);
	free(sh->secret);
	for (size_t i = 0; i < sh->nowned; i++)
		cdm_free(sh->owned[i]);
	free(sh->owned);
	cdm_share_seed_clear(sh);
	cdm_st_close(sh->st);
	free(sh);
}

const char *cdm_share_meta(const cdm_share *sh, const char *key)
{
	return cdm_st_meta(sh->st, key);
}

/* NAME + ".a" or ".b" in a new string (NULL when out of memory). */
static char *comp_name(const char *name, char c)
{
	size_t n = strlen(name);
	char *s = malloc(n + 3);
	if (s) {
		memcpy(s, name, n);
		s[n] = '.';
		s[n + 1] = c;
		s[n + 2] = '\0';
	}
	return s;
}

const struct cdm_st_tensor *cdm_share_find(const cdm_share *sh, const char *name)
{
	char *s = comp_name(name, sh->seeded[0] ? 'b' : 'a');
	const struct cdm_st_tensor *t = s ? cdm_st_find(sh->st, s) : NULL;
	free(s);
	return t ? t : cdm_share_seed_find(sh, name);
}

static int shape_is(const struct cdm_st_tensor *t, int ndim, const int64_t *shape)
{
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	return same;
}

/* Named by the secret (conv_in.weight), not by its component tensor
 * (conv_in.weight.a): the user thinks in the model's names. */
static int shape_error(const cdm_share *sh, const char *name, const struct cdm_st_tensor *t,
		       int ndim, const int64_t *shape, struct cdm_err *err)
{
	char a[100], b[100];
	return cdm_fail(err, CDM_EINPUT, "%s: tensor '%.80s': shape %s, expected %s", sh->path,
			name, cdm_st_shape_str(a, sizeof a, t->ndim, t->shape),
			cdm_st_shape_str(b, sizeof b, ndim, shape));
}

static int get_comp(cdm_share *sh, const char *name, char c, int ndim, const int64_t *shape,
		    const uint64_t **out, struct cdm_err *err)
{
	if (sh->seeded[c == 'b'])
		return cdm_share_seed_comp(sh, name, c == 'b', ndim, shape, out, err);
	char *s = comp_name(name, c);
	if (!s)
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	int owned = 0, rc = 0;
	const struct cdm_st_tensor *t = cdm_st_find(sh->st, s);
	if (!t)
		rc = cdm_fail(err, CDM_EINPUT, "%s: no secret tensor '%.80s'", sh->path, name);
	else if (!shape_is(t, ndim, shape))
		rc = shape_error(sh, name, t, ndim, shape, err);
	else
		rc = cdm_st_load_u64(sh->st, s, ndim, shape, out, &owned, err);
	free(s);
	if (rc < 0 || !owned)
		return rc;
	void **o = realloc(sh->owned, (sh->nowned + 1) * sizeof *o);
	if (!o) {
		cdm_free((void *)*out);
		return cdm_fail(err, CDM_ENOMEM, "%s: out of memory", sh->path);
	}
	sh->owned = o;
	sh->owned[sh->nowned++] = (void *)*out;
	return 0;
}

int cdm_share_get(cdm_share *sh, const char *name, int ndim, const int64_t *shape,
		  const uint64_t **a, const uint64_t **b, struct cdm_err *err)
{
	*a = *b = NULL;
	CDM_TRY(get_comp(sh, name, 'a', ndim, shape, a, err));
	return get_comp(sh, name, 'b', ndim, shape, b, err);
}

/* ---- sets ------------------------------------------------------------------- */

static int same_secrets(const cdm_share *x, const cdm_share *y, struct cdm_err *err)
{
	for (size_t i = 0; i < x->nsecret; i++) {
		const struct cdm_st_tensor *tx = cdm_share_find(x, x->secret[i]);
		const struct cdm_st_tensor *ty = cdm_share_find(y, x->secret[i]);
		if (!ty)
			return cdm_fail(err, CDM_EINPUT, "%s has tensor '%.80s' but %s does not",
					x->path, x->secret[i], y->path);
		if (!same_shape(tx, ty))
			return cdm_fail(err, CDM_EINPUT, "%s and %s: tensor '%.80s' differs in shape",
					x->path, y->path, x->secret[i]);
	}
	if (x->nsecret != y->nsecret)
		return cdm_fail(err, CDM_EINPUT, "%s has %zu tensors but %s has %zu", x->path,
				x->nsecret, y->path, y->nsecret);
	return 0;
}

static int check_pair(const cdm_share *x, const cdm_share *y, struct cdm_err *err)
{
	if (x->party == y->party) {
		if (strcmp(x->path, y->path) == 0)
			return cdm_fail(err, CDM_EINPUT, "%s given twice", x->path);
		return cdm_fail(err, CDM_EINPUT, "%s and %s are both party %d's share", x->path,
				y->path, x->party);
	}
	if (strcmp(x->sharing_id, y->sharing_id) != 0)
		return cdm_fail(err, CDM_EINPUT, "%s and %s belong to different sharings", x->path,
				y->path);
	if (x->kind != y->kind)
		return cdm_fail(err, CDM_EINPUT, "%s is %s %s share but %s is %s %s share", x->path,
				article(x->kind), kind_names[x->kind], y->path, article(y->kind),
				kind_names[y->kind]);
	if (x->frac_bits != y->frac_bits || x->ring_bits != y->ring_bits)
		return cdm_fail(err, CDM_EINPUT, "%s and %s use different fraction bits (%d, %d)",
				x->path, y->path, x->frac_bits, y->frac_bits);
	return same_secrets(x, y, err);
}

int cdm_share_check_set(cdm_share *const *sh, size_t n, struct cdm_err *err)
{
	if (n < 2 || n > 3)
		return cdm_fail(err, CDM_EINPUT, "need 2 or 3 share files, got %zu", n);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			CDM_TRY(check_pair(sh[i], sh[j], err));
	return 0;
}

/* Component x_k is party k's .a and party (k+2)%3's .b. */
int cdm_share_reconstruct(cdm_share *const *sh, size_t n, const char *name, uint64_t **out,
			  struct cdm_err *err)
{
	*out = NULL;
	CDM_TRY(cdm_share_check_set(sh, n, err));
	const struct cdm_st_tensor *t = cdm_share_find(sh[0], name);
	if (!t)
		return cdm_fail(err, CDM_EINPUT, "%s: no secret tensor '%.80s'", sh[0]->path, name);
	const uint64_t *comp[3][2] = {{0}}; /* [k][copy] */
	const char *from[3][2] = {{0}};
	for (size_t i = 0; i < n; i++) {
		const uint64_t *a, *b;
		CDM_TRY(cdm_share_get(sh[i], name, t->ndim, t->shape, &a, &b, err));
		int p = sh[i]->party, kb = (p + 1) % 3;
		int sa = comp[p][0] != NULL, sb = comp[kb][0] != NULL;
		comp[p][sa] = a;
		from[p][sa] = sh[i]->path;
		comp[kb][sb] = b;
		from[kb][sb] = sh[i]->path;
	}
	for (int k = 0; k < 3; k++) {
		if (!comp[k][0])
			return cdm_fail(err, CDM_EINTERNAL, "component x_%d missing", k);
		if (comp[k][1] && memcmp(comp[k][0], comp[k][1], t->nbytes) != 0)
			return cdm_fail(err, CDM_EINPUT,
					"%s and %s disagree on component x_%d of '%.80s' (corrupt or mixed shares)",
					from[k][0], from[k][1], k, name);
	}
	uint64_t *x = cdm_alloc(t->numel, 8, err);
	if (!x)
		return cdm_err_prefix(err, "%s: tensor '%.80s': ", sh[0]->path, name);
	for (uint64_t i = 0; i < t->numel; i++)
		x[i] = comp[0][0][i] + comp[1][0][i] + comp[2][0][i];
	*out = x;
	return 0;
}

int cdm_share_new_id(char id[CDM_SHARE_ID_LEN + 1], struct cdm_err *err)
{
	uint8_t r[CDM_SEED_BYTES];
	CDM_TRY(cdm_seed_random(r, err));
	for (int i = 0; i < 16; i++)
		snprintf(id + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

struct cdm_share_writer {
	cdm_st_writer *st;
	enum cdm_share_kind kind;
	int has_config;
	int seeded[2];  /* format 2: component a / b not stored */
	json_t *index;  /* its 'secrets' index: name -> shape */
	size_t nadded;
};

int cdm_share_writer_new(cdm_share_writer **out, int party, int frac_bits,
			 const char *sharing_id, const char *kind, struct cdm_err *err)
{
	*out = NULL;
	enum cdm_share_kind k;
	if (party < 0 || party > 2)
		return cdm_fail(err, CDM_EINPUT, "share writer: party %d out of range (0..2)", party);
	if (frac_bits < CDM_FRAC_BITS_MIN || frac_bits > CDM_FRAC_BITS_MAX)
		return cdm_fail(err, CDM_EINPUT, "share writer: frac_bits %d out of range (%d..%d)",
				frac_bits, CDM_FRAC_BITS_MIN, CDM_FRAC_BITS_MAX);
	if (!valid_id(sharing_id))
		return cdm_fail(err, CDM_EINPUT, "share writer: sharing id is not %d lowercase hex digits",
				CDM_SHARE_ID_LEN);
	if (cdm_share_kind_parse(kind, &k) < 0)
		return cdm_fail(err, CDM_EINPUT, "share writer: unknown kind '%s'", kind ? kind : "");
	cdm_share_writer *w = calloc(1, sizeof *w);
	if (!w)
		return cdm_fail(err, CDM_ENOMEM, "share writer: out of memory");
	w->kind = k;
	char num[2][16];
	snprintf(num[0], sizeof num[0], "%d", party);
	snprintf(num[1], sizeof num[1], "%d", frac_bits);
	int rc = cdm_st_writer_new(&w->st, err);
	const char *kv[][2] = {{"format", CDM_SHARE_FORMAT}, {"party", num[0]},
			       {"ring_bits", "64"},          {"frac_bits", num[1]},
			       {"sharing_id", sharing_id},   {"kind", kind_names[k]}};
	for (size_t i = 0; rc == 0 && i < sizeof kv / sizeof kv[0]; i++)
		rc = cdm_st_writer_meta(w->st, kv[i][0], kv[i][1], err);
	if (rc < 0) {
		cdm_share_writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void cdm_share_writer_free(cdm_share_writer *w)
{
	if (!w)
		return;
	cdm_st_writer_free(w->st);
	json_decref(w->index);
	free(w);
}

int cdm_share_writer_seeds(cdm_share_writer *w, const uint8_t *seed_a, const uint8_t *seed_b,
			   struct cdm_err *err)
{
	const uint8_t *seed[2] = {seed_a, seed_b};
	static const char *const keys[2] = {"seed_a", "seed_b"};
	if (w->nadded || w->index)
		return cdm_fail(err, CDM_EINTERNAL, "share writer: seeds after tensors");
	if (!seed_a && !seed_b)
		return 0;
	if (!(w->index = json_object()))
		return cdm_fail(err, CDM_ENOMEM, "share writer: out of memory");
	CDM_TRY(cdm_st_writer_meta(w->st, "format", CDM_SHARE_FORMAT_SEEDED, err));
	for (int c = 0; c < 2; c++) {
		char hex[33];
		if (!seed[c])
			continue;
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", seed[c][i]);
		CDM_TRY(cdm_st_writer_meta(w->st, keys[c], hex, err));
		w->seeded[c] = 1;
	}
	return 0;
}

/* name -> [shape] into the 'secrets' index. */
static int index_add(cdm_share_writer *w, const char *name, int ndim, const int64_t *shape,
		     struct cdm_err *err)
{
	json_t *d = json_array();
	for (int i = 0; d && i < ndim; i++)
		if (json_array_append_new(d, json_integer((json_int_t)shape[i])) < 0) {
			json_decref(d);
			d = NULL;
		}
	if (!d || json_object_set_new(w->index, name, d) < 0)
		return cdm_fail(err, CDM_ENOMEM, "share writer: out of memory");
	return 0;
}

int cdm_share_writer_add(cdm_share_writer *w, const char *name, int ndim, const int64_t *shape,
			 const uint64_t *a, const uint64_t *b, struct cdm_err *err)
{
	if (!*name)
		return cdm_fail(err, CDM_EINPUT, "share writer: empty tensor name");
	char *na = comp_name(name, 'a'), *nb = comp_name(name, 'b');
	int rc = !na || !nb ? cdm_fail(err, CDM_ENOMEM, "share writer: out of memory") : 0;
	if (rc == 0 && w->index && json_object_get(w->index, name))
		rc = cdm_fail(err, CDM_EINPUT, "share writer: tensor '%.80s' added twice", name);
	if (rc == 0 && w->index)
		rc = index_add(w, name, ndim, shape, err);
	if (rc == 0 && !w->seeded[0])
		rc = cdm_st_writer_add(w->st, na, CDM_U64, ndim, shape, a, err);
	if (rc == 0 && !w->seeded[1])
		rc = cdm_st_writer_add(w->st, nb, CDM_U64, ndim, shape, b, err);
	w->nadded += rc == 0;
	free(na);
	free(nb);
	return rc;
}

int cdm_share_writer_meta(cdm_share_writer *w, const char *key, const char *value,
			  struct cdm_err *err)
{
	for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
		if (strcmp(key, reserved_keys[i]) == 0)
			return cdm_fail(err, CDM_EINPUT, "share writer: metadata key '%s' is reserved",
					key);
	if (strcmp(key, "config") == 0 || strcmp(key, "scheduler_config") == 0) {
		json_t *j;
		CDM_TRY(cdm_json_parse(value, strlen(value), key, &j, err));
		json_decref(j);
		w->has_config |= strcmp(key, "config") == 0;
	}
	return cdm_st_writer_meta(w->st, key, value, err);
}

int cdm_share_writer_save(cdm_share_writer *w, const char *path, int zstd_level,
			  struct cdm_err *err)
{
	if (w->kind == CDM_SHARE_MODEL && !w->has_config)
		return cdm_fail(err, CDM_EINPUT, "%s: a model share needs the 'config' metadata", path);
	if (w->index) {
		char *t = json_dumps(w->index, JSON_COMPACT | JSON_SORT_KEYS);
		int rc = t ? cdm_st_writer_meta(w->st, "secrets", t, err)
			   : cdm_fail(err, CDM_ENOMEM, "%s: out of memory", path);
		free(t);
		CDM_TRY(rc);
	}
	return cdm_st_writer_save(w->st, path, 0600, zstd_level, err);
}
