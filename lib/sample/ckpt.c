/*
 * sample/ckpt: checkpoint files of one party (see ckpt.h).
 */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_MAX_LEN 4200

static int ckpt_path(char *buf, size_t size, const char *dir, int party, int64_t step,
		     struct cdm_err *err)
{
	int n = snprintf(buf, size, "%s/party%d-step%06lld.ckpt", dir, party, (long long)step);
	if (n < 0 || (size_t)n >= size)
		return cdm_fail(err, CDM_EINPUT, "--checkpoint: directory name too long");
	return 0;
}

/* The step of a file name of `party`'s checkpoints, or -1 (temporaries and
 * other files). The name must be exactly the one ckpt_path makes. */
static int64_t name_step(const char *name, int party)
{
	int p, used = 0;
	long long s;
	if (sscanf(name, "party%d-step%lld.ckpt%n", &p, &s, &used) != 2 || p != party ||
	    (size_t)used != strlen(name) || s < 0)
		return -1;
	char back[64];
	snprintf(back, sizeof back, "party%d-step%06lld.ckpt", p, s);
	return strcmp(back, name) == 0 ? (int64_t)s : -1;
}

static int hex_to_seed(const char *s, uint8_t out[CDM_SEED_BYTES])
{
	if (!s || strlen(s) != 2 * CDM_SEED_BYTES)
		return -1;
	for (int i = 0; i < CDM_SEED_BYTES; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Open the checkpoint at path and check that it belongs to party and run. */
static int open_checked(cdm_share **out, const char *path, int party, const char *run,
			int *other_run, struct cdm_err *err)
{
	cdm_share *sh = NULL;
	*other_run = 0;
	CDM_TRY(cdm_share_open(&sh, path, "checkpoint", err));
	const char *r = cdm_share_meta(sh, "run"), *st = cdm_share_meta(sh, "step");
	int rc = 0;
	if (sh->party != party)
		rc = cdm_fail(err, CDM_EINPUT, "%s: is party %d's checkpoint, expected party %d's",
			      path, sh->party, party);
	else if (!r || !st || !cdm_share_meta(sh, "party_seed"))
		rc = cdm_fail(err, CDM_EINPUT, "%s: checkpoint without run, step or party_seed "
			      "metadata", path);
	else if (strcmp(r, run) != 0)
		*other_run = 1;
	if (rc < 0) {
		cdm_share_close(sh);
		return rc;
	}
	*out = sh;
	return 0;
}

int ckpt_scan(const char *dir, int party, const char *run, int64_t steps[CKPT_KEEP],
	      char ids[CKPT_KEEP][CDM_SHARE_ID_LEN + 1], int *n, struct cdm_err *err)
{
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0; /* nothing written yet */
		return cdm_fail(err, CDM_EINPUT, "%s: %s", dir, strerror(errno));
	}
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		int64_t s = name_step(e->d_name, party);
		if (s < 0)
			continue;
		char path[NAME_MAX_LEN];
		cdm_share *sh = NULL;
		int other;
		if ((rc = ckpt_path(path, sizeof path, dir, party, s, err)) < 0 ||
		    (rc = open_checked(&sh, path, party, run, &other, err)) < 0)
			break;
		if (!other && strtoll(cdm_share_meta(sh, "step"), NULL, 10) != s)
			rc = cdm_fail(err, CDM_EINPUT, "%s: holds step %s, not %lld", path,
				      cdm_share_meta(sh, "step"), (long long)s);
		/* insert into the newest-first list of at most CKPT_KEEP */
		for (int i = 0; rc == 0 && !other && i < CKPT_KEEP; i++) {
			if (i < *n && steps[i] >= s)
				continue;
			int last = *n < CKPT_KEEP ? *n : CKPT_KEEP - 1;
			for (int j = last; j > i; j--) {
				steps[j] = steps[j - 1];
				memcpy(ids[j], ids[j - 1], sizeof ids[j]);
			}
			steps[i] = s;
			memcpy(ids[i], sh->sharing_id, sizeof ids[i]);
			if (*n < CKPT_KEEP)
				(*n)++;
			break;
		}
		cdm_share_close(sh);
	}
	closedir(d);
	return rc;
}

int ckpt_write(const char *dir, int party, int frac, const char *run, const int64_t shape[4],
	       const struct ckpt_state *st, struct cdm_err *err)
{
	char path[NAME_MAX_LEN], num[32], hex[2 * CDM_SEED_BYTES + 1];
	CDM_TRY(ckpt_path(path, sizeof path, dir, party, st->step, err));
	cdm_share_writer *w = NULL;
	CDM_TRY(cdm_share_writer_new(&w, party, frac, st->id, "checkpoint", err));
	snprintf(num, sizeof num, "%lld", (long long)st->step);
	for (int i = 0; i < CDM_SEED_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", st->seed[i]);
	int rc = cdm_share_writer_add(w, "x", 4, shape, st->x.a, st->x.b, err);
	if (rc == 0 && st->x0_prev.a)
		rc = cdm_share_writer_add(w, "x0_prev", 4, shape, st->x0_prev.a, st->x0_prev.b, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "step", num, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "run", run, err);
	if (rc == 0)
		rc = cdm_share_writer_meta(w, "party_seed", hex, err);
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, 0, err);
	memset(hex, 0, sizeof hex);
	cdm_share_writer_free(w);
	return rc;
}

/* Copy secret `name` of sh into a new sharing. */
static int get_copy(cdm_share *sh, const char *name, const int64_t shape[4], cdm_shr *out,
		    struct cdm_err *err)
{
	const uint64_t *a, *b;
	CDM_TRY(cdm_share_get(sh, name, 4, shape, &a, &b, err));
	size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
	CDM_TRY(cdm_shr_new(out, n, err));
	memcpy(out->a, a, n * 8);
	memcpy(out->b, b, n * 8);
	return 0;
}

int ckpt_load(const char *dir, int party, int frac, const char *run, int64_t step,
	      const int64_t shape[4], struct ckpt_state *st, struct cdm_err *err)
{
	char path[NAME_MAX_LEN];
	cdm_share *sh = NULL;
	int other;
	memset(st, 0, sizeof *st);
	CDM_TRY(ckpt_path(path, sizeof path, dir, party, step, err));
	CDM_TRY(open_checked(&sh, path, party, run, &other, err));
	int rc = 0;
	if (other)
		rc = cdm_fail(err, CDM_EINPUT, "%s: checkpoint of another run", path);
	else if (sh->frac_bits != frac)
		rc = cdm_fail(err, CDM_EINPUT, "%s: %d fraction bits, the session uses %d", path,
			      sh->frac_bits, frac);
	else if (hex_to_seed(cdm_share_meta(sh, "party_seed"), st->seed) < 0)
		rc = cdm_fail(err, CDM_EINPUT, "%s: bad party_seed metadata", path);
	if (rc == 0)
		rc = get_copy(sh, "x", shape, &st->x, err);
	if (rc == 0 && cdm_share_find(sh, "x0_prev"))
		rc = get_copy(sh, "x0_prev", shape, &st->x0_prev, err);
	if (rc == 0) {
		st->step = step;
		memcpy(st->id, sh->sharing_id, sizeof st->id);
	} else {
		ckpt_state_clear(st);
	}
	cdm_share_close(sh);
	return rc;
}

void ckpt_state_clear(struct ckpt_state *st)
{
	cdm_shr_free(&st->x);
	cdm_shr_free(&st->x0_prev);
	memset(st, 0, sizeof *st);
}

/* Unlink party's checkpoints of `run` except steps keep0 and keep1 (-1:
 * none): how many, or an error naming a file that would not go. Files of
 * other runs and files that do not read as checkpoints are the user's. */
static int remove_run(const char *dir, int party, const char *run, int64_t keep0,
		      int64_t keep1, struct cdm_err *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : cdm_fail(err, CDM_EIO, "%s: %s", dir, strerror(errno));
	struct dirent *e;
	char path[NAME_MAX_LEN];
	int removed = 0, rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		int64_t s = name_step(e->d_name, party);
		cdm_share *sh = NULL;
		int other = 1;
		struct cdm_err ignore = {0};
		if (s < 0 || s == keep0 || s == keep1 ||
		    ckpt_path(path, sizeof path, dir, party, s, &ignore) < 0)
			continue;
		if (open_checked(&sh, path, party, run, &other, &ignore) < 0)
			continue;
		cdm_share_close(sh);
		if (other)
			continue;
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			rc = cdm_fail(err, CDM_EIO, "%s: cannot remove: %s", path, strerror(errno));
	}
	closedir(d);
	return rc < 0 ? rc : removed;
}

void ckpt_prune(const char *dir, int party, const char *run, int64_t keep0, int64_t keep1)
{
	/* a failed unlink only leaves an old file that scan orders below */
	struct cdm_err ignore = {0};
	remove_run(dir, party, run, keep0, keep1, &ignore);
}

int ckpt_remove_run(const char *dir, int party, const char *run, struct cdm_err *err)
{
	return remove_run(dir, party, run, -1, -1, err);
}
