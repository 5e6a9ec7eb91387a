/*
 * model/tokenizer: CLIP byte-level BPE (see tokenizer.h). The vocabulary
 * and merge ranks live in two open-addressing hash tables keyed by UTF-8
 * strings; the merge loop follows the reference algorithm (repeatedly merge
 * every occurrence of the lowest-ranked adjacent pair).
 */
#define _GNU_SOURCE
#include "tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_config.h"

#define VOCAB_MAX_BYTES (64u << 20)
#define MAX_MERGES (49152 - 256 - 2) /* CLIPTokenizer reads at most this many */
#define MAX_PIECE 1024               /* bytes of one pre-token (longer are split) */

/* string -> int hash table (keys owned). */
struct map {
	char **keys;
	int64_t *vals;
	size_t cap; /* power of two */
	size_t n;
};

struct cdm_tokenizer {
	struct map vocab, ranks;
	int64_t bos, eos, pad, length;
	char benc[256][4]; /* byte -> UTF-8 of its byte-level BPE character */
};

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static int map_init(struct map *m, size_t want, struct cdm_err *err)
{
	m->cap = 64;
	while (m->cap < 2 * want + 2)
		m->cap *= 2;
	m->keys = cdm_zalloc(m->cap, sizeof *m->keys, err);
	m->vals = cdm_zalloc(m->cap, sizeof *m->vals, err);
	return m->keys && m->vals ? 0 : CDM_ENOMEM;
}

static void map_free(struct map *m)
{
	for (size_t i = 0; m->keys && i < m->cap; i++)
		free(m->keys[i]);
	cdm_free(m->keys);
	cdm_free(m->vals);
}

/* Value of key[0..n) or -1. */
static int64_t map_get(const struct map *m, const char *key, size_t n)
{
	for (size_t i = hash(key, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const char *k = m->keys[i];
		if (!k)
			return -1;
		if (strlen(k) == n && !memcmp(k, key, n))
			return m->vals[i];
	}
}

/* Insert unless present (first occurrence wins, as a dict built in order
 * keeps the lowest merge rank). */
static int map_put(struct map *m, const char *key, int64_t val, struct cdm_err *err)
{
	size_t n = strlen(key);
	if (m->n + 1 > m->cap / 2)
		return cdm_fail(err, CDM_EINTERNAL, "tokenizer: hash table full");
	size_t i = hash(key, n) & (m->cap - 1);
	for (; m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (!strcmp(m->keys[i], key))
			return 0;
	if (!(m->keys[i] = strdup(key)))
		return cdm_fail(err, CDM_ENOMEM, "tokenizer: out of memory");
	m->vals[i] = val;
	m->n++;
	return 0;
}

/* GPT-2/CLIP bytes_to_unicode: printable Latin-1 bytes stand for
 * themselves, the others for U+0100, U+0101, ... in byte order. */
static void byte_table(char out[256][4])
{
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
		unsigned cp = keep ? (unsigned)b : 256u + (unsigned)extra++;
		if (cp < 0x80) {
			out[b][0] = (char)cp;
			out[b][1] = 0;
		} else {
			out[b][0] = (char)(0xC0 | (cp >> 6));
			out[b][1] = (char)(0x80 | (cp & 0x3F));
			out[b][2] = 0;
		}
	}
}

static int load_vocab(cdm_tokenizer *t, const char *dir, struct cdm_err *err)
{
	char path[4200], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof path, "%s/vocab.json", dir);
	CDM_TRY(cdm_model_read_text(path, VOCAB_MAX_BYTES, &text, &len, err));
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je);
	cdm_free(text);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return cdm_fail(err, CDM_EINPUT, "%s: not a JSON object (line %d: %s)", path, je.line,
				root ? "wrong type" : je.text);
	}
	int rc = map_init(&t->vocab, json_object_size(root), err);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (rc < 0)
			break;
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > (1 << 24)) {
			rc = cdm_fail(err, CDM_EINPUT, "%s: entry '%.40s' is not an id in 0..2^24", path,
				      key);
			break;
		}
		rc = map_put(&t->vocab, key, json_integer_value(v), err);
	}
	json_decref(root);
	return rc;
}

static int load_merges(cdm_tokenizer *t, const char *dir, struct cdm_err *err)
{
	char path[4200], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	CDM_TRY(cdm_model_read_text(path, VOCAB_MAX_BYTES, &text, &len, err));
	int rc = map_init(&t->ranks, MAX_MERGES, err);
	/* as CLIPTokenizer: strip the file, drop the first (header) line, keep at
	 * most MAX_MERGES lines */
	char *s = text, *end = text + len;
	while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
		*--end = 0;
	int64_t line = 0;
	for (char *save = NULL, *ln = strtok_r(s, "\n", &save); ln && rc == 0;
	     ln = strtok_r(NULL, "\n", &save), line++) {
		if (line == 0)
			continue;
		if (line > MAX_MERGES)
			break;
		ln[strcspn(ln, "\r")] = 0;
		if (!strchr(ln, ' ')) {
			rc = cdm_fail(err, CDM_EINPUT, "%s: line %lld is not a merge 'a b'", path,
				      (long long)line + 1);
			break;
		}
		rc = map_put(&t->ranks, ln, line - 1, err);
	}
	cdm_free(text);
	return rc;
}

/* pad_token and model_max_length from tokenizer_config.json or
 * special_tokens_map.json when present. */
static int load_settings(cdm_tokenizer *t, const char *dir, struct cdm_err *err)
{
	static const char *const files[] = {"tokenizer_config.json", "special_tokens_map.json"};
	t->pad = t->eos;
	t->length = 77;
	int pad_set = 0;
	for (int f = 0; f < 2; f++) {
		char path[4200], *text = NULL;
		size_t len;
		struct cdm_err ignore;
		snprintf(path, sizeof path, "%s/%s", dir, files[f]);
		if (cdm_model_read_text(path, 1 << 20, &text, &len, &ignore) < 0)
			continue;
		json_t *root = json_loadb(text, len, 0, NULL);
		cdm_free(text);
		if (!root || !json_is_object(root)) {
			json_decref(root);
			return cdm_fail(err, CDM_EINPUT, "%s: not a JSON object", path);
		}
		const json_t *ml = json_object_get(root, "model_max_length");
		if (f == 0 && ml && json_is_integer(ml) && json_integer_value(ml) >= 2 &&
		    json_integer_value(ml) <= 4096)
			t->length = json_integer_value(ml);
		const json_t *pad = json_object_get(root, "pad_token");
		if (pad && json_is_object(pad))
			pad = json_object_get(pad, "content");
		if (!pad_set && pad && json_is_string(pad)) {
			const char *s = json_string_value(pad);
			int64_t id = map_get(&t->vocab, s, strlen(s));
			if (id < 0) {
				json_decref(root);
				return cdm_fail(err, CDM_EINPUT, "%s: pad_token '%.40s' is not in "
						"vocab.json", path, s);
			}
			t->pad = id;
			pad_set = 1;
		}
		json_decref(root);
	}
	return 0;
}

int cdm_tokenizer_load(cdm_tokenizer **out, const char *dir, struct cdm_err *err)
{
	struct cdm_model_paths p;
	*out = NULL;
	CDM_TRY(cdm_sd_locate(&p, dir, CDM_SD_TOKENIZER, err));
	cdm_tokenizer *t = cdm_zalloc(1, sizeof *t, err);
	if (!t)
		return CDM_ENOMEM;
	byte_table(t->benc);
	int rc;
	if ((rc = load_vocab(t, p.config, err)) < 0 || (rc = load_merges(t, p.config, err)) < 0)
		goto fail;
	t->bos = map_get(&t->vocab, "<|startoftext|>", 15);
	t->eos = map_get(&t->vocab, "<|endoftext|>", 13);
	if (t->bos < 0 || t->eos < 0) {
		rc = cdm_fail(err, CDM_EINPUT, "%s/vocab.json: no <|startoftext|> or <|endoftext|> "
			      "entry (not a CLIP vocabulary)", p.config);
		goto fail;
	}
	if ((rc = load_settings(t, p.config, err)) < 0)
		goto fail;
	*out = t;
	return 0;
fail:
	cdm_tokenizer_free(t);
	return rc;
}

void cdm_tokenizer_free(cdm_tokenizer *t)
{
	if (!t)
		return;
	map_free(&t->vocab);
	map_free(&t->ranks);
	cdm_free(t);
}

int64_t cdm_tokenizer_length(const cdm_tokenizer *t) { return t->length; }
int64_t cdm_tokenizer_vocab_size(const cdm_tokenizer *t) { return (int64_t)t->vocab.n; }
int64_t cdm_tokenizer_bos(const cdm_tokenizer *t) { return t->bos; }
int64_t cdm_tokenizer_eos(const cdm_tokenizer *t) { return t->eos; }

/* ---- encoding ----------------------------------------------------------------- */

/* Output state: ids written so far (tokens beyond the room are dropped). */
struct emit {
	int64_t *ids;
	int64_t n, room;
};

static void emit(struct emit *e, int64_t id)
{
	if (e->n < e->room)
		e->ids[e->n++] = id;
}

/* Merge rank of the pair (a, b) or -1. */
static int64_t rank_of(const cdm_tokenizer *t, const char *a, const char *b, char *buf,
		       size_t size)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la + lb + 2 > size)
		return -1;
	memcpy(buf, a, la);
	buf[la] = ' ';
	memcpy(buf + la + 1, b, lb + 1);
	return map_get(&t->ranks, buf, la + 1 + lb);
}

/* BPE of one pre-token of n bytes: symbols are byte characters, the last
 * with </w>; merge the lowest-ranked pair everywhere until none applies. */
static int bpe(const cdm_tokenizer *t, const char *piece, size_t n, struct emit *e,
	       struct cdm_err *err)
{
	/* each symbol is a NUL-terminated string in its own slot of a buffer big
	 * enough for the whole piece plus </w> */
	size_t slot = n * 2 + 8;
	char *buf = cdm_alloc(n + 1, slot, err), *pair = cdm_alloc(2, slot + 2, err);
	char **sym = cdm_alloc(n + 1, sizeof *sym, err);
	int rc = 0;
	if (!buf || !pair || !sym) {
		rc = CDM_ENOMEM;
		goto done;
	}
	size_t ns = n;
	for (size_t i = 0; i < n; i++) {
		sym[i] = buf + i * slot;
		snprintf(sym[i], slot, "%s%s", t->benc[(unsigned char)piece[i]],
			 i == n - 1 ? "</w>" : "");
	}
	while (ns > 1) {
		int64_t best = -1;
		size_t bi = 0;
		for (size_t i = 0; i + 1 < ns; i++) {
			int64_t r = rank_of(t, sym[i], sym[i + 1], pair, 2 * slot + 2);
			if (r >= 0 && (best < 0 || r < best))
				best = r, bi = i;
		}
		if (best < 0)
			break;
		/* merge every occurrence of the pair (sym[bi], sym[bi+1]), left to
		 * right; the pair is copied first since merging rewrites the slots */
		size_t la = strlen(sym[bi]), lb = strlen(sym[bi + 1]);
		memcpy(pair, sym[bi], la + 1);
		memcpy(pair + la + 1, sym[bi + 1], lb + 1);
		const char *a = pair, *b = pair + la + 1;
		size_t w = 0;
		for (size_t i = 0; i < ns; i++) {
			if (i + 1 < ns && !strcmp(sym[i], a) && !strcmp(sym[i + 1], b)) {
				memcpy(sym[w], a, la);
				memcpy(sym[w] + la, b, lb + 1);
				i++;
			} else if (w != i) {
				memmove(sym[w], sym[i], strlen(sym[i]) + 1);
			}
			w++;
		}
		ns = w;
	}
	for (size_t i = 0; i < ns; i++) {
		int64_t id = map_get(&t->vocab, sym[i], strlen(sym[i]));
		emit(e, id >= 0 ? id : t->eos); /* unk_token is <|endoftext|> */
	}
done:
	cdm_free(buf);
	cdm_free(pair);
	cdm_free(sym);
	return rc;
}

static int is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at s, else 0. */
static size_t contraction(const char *s)
{
	static const char *const c[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
	for (size_t i = 0; i < sizeof c / sizeof *c; i++)
		if (!strncmp(s, c[i], strlen(c[i])))
			return strlen(c[i]);
	return 0;
}

int cdm_tokenizer_encode(const cdm_tokenizer *t, const char *text, int64_t *ids, int64_t len,
			 struct cdm_err *err)
{
	if (len != t->length)
		return cdm_fail(err, CDM_EINPUT, "tokenizer: %lld ids requested, the tokenizer makes "
				"%lld", (long long)len, (long long)t->length);
	/* clean: lowercase ASCII; whitespace is only a separator below, which
	 * is what collapsing runs to one space amounts to */
	size_t n = strlen(text);
	char *s = cdm_alloc(n + 1, 1, err);
	if (!s)
		return CDM_ENOMEM;
	for (size_t i = 0; i <= n; i++)
		s[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]);
	struct emit e = {ids + 1, 0, len - 2};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0 && e.n < e.room;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = 0;
		if (is_space(c)) {
			i++;
			continue;
		}
		if (!strncmp(s + i, "<|startoftext|>", 15) || !strncmp(s + i, "<|endoftext|>", 13)) {
			k = s[i + 2] == 's' ? 15 : 13;
			emit(&e, k == 15 ? t->bos : t->eos);
			i += k;
			continue;
		}
		if ((k = contraction(s + i)) == 0) {
			if (is_letter(c))
				while (i + k < n && is_letter((unsigned char)s[i + k]))
					k++;
			else if (is_digit(c))
				k = 1;
			else
				while (i + k < n && !is_space((unsigned char)s[i + k]) &&
				       !is_letter((unsigned char)s[i + k]) &&
				       !is_digit((unsigned char)s[i + k]))
					k++;
		}
		/* a pathological run (no real word is this long) is cut into pieces */
		for (size_t off = 0; off < k && rc == 0; off += MAX_PIECE)
			rc = bpe(t, s + i + off, k - off < MAX_PIECE ? k - off : MAX_PIECE, &e, err);
		i += k;
	}
	cdm_free(s);
	if (rc < 0)
		return rc;
	ids[0] = t->bos;
	ids[1 + e.n] = t->eos;
	for (int64_t i = 2 + e.n; i < len; i++)
		ids[i] = t->pad;
	return 0;
}
