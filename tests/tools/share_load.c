/* share_load: the weight-binding path of a party, alone (no session): open a
 * model share and fetch every secret's two components as the secure backend
 * does when it binds weights (cdm_share_get: stored components borrowed
 * from the mapping, seeded ones expanded once), then optionally read every
 * element (as a forward pass would). Prints one line of key=value:
 * secrets, elements, stored and expanded bytes, peak RSS after binding and
 * after touching, seconds. For memory measurements (docs/sd15-projection.md)
 * and tests/cli/share_seeds.sh.
 *   share_load [--touch] MODEL_SHARE */
#include <stdio.h>
#include <string.h>

#include "../../lib/base/base.h"
#include "../../lib/fmt/share.h"

int main(int argc, char **argv)
{
	int touch = argc == 3 && !strcmp(argv[1], "--touch");
	if (argc != 2 + touch) {
		fprintf(stderr, "usage: share_load [--touch] MODEL_SHARE\n");
		return 1;
	}
	struct cdm_err err = {0};
	cdm_share *sh = NULL;
	double t0 = cdm_now();
	if (cdm_share_open(&sh, argv[1 + touch], "model", &err) < 0) {
		fprintf(stderr, "share_load: %s\n", err.msg);
		return 1;
	}
	uint64_t numel = 0, stored = 0, expanded = 0, sum = 0;
	for (size_t i = 0; i < sh->nsecret; i++) {
		const struct cdm_st_tensor *t = cdm_share_find(sh, sh->secret[i]);
		const uint64_t *a, *b;
		if (!t || cdm_share_get(sh, sh->secret[i], t->ndim, t->shape, &a, &b, &err) < 0) {
			fprintf(stderr, "share_load: %s\n", t ? err.msg : "index");
			cdm_share_close(sh);
			return 1;
		}
		numel += t->numel;
		stored += 8 * t->numel * (uint64_t)(!sh->seeded[0] + !sh->seeded[1]);
		expanded += 8 * t->numel * (uint64_t)(sh->seeded[0] + sh->seeded[1]);
	}
	uint64_t rss_bind = cdm_peak_rss();
	double t1 = cdm_now();
	for (size_t i = 0; touch && i < sh->nsecret; i++) {
		const struct cdm_st_tensor *t = cdm_share_find(sh, sh->secret[i]);
		const uint64_t *a, *b;
		cdm_share_get(sh, sh->secret[i], t->ndim, t->shape, &a, &b, &err);
		for (uint64_t k = 0; k < t->numel; k++)
			sum += a[k] ^ b[k];
	}
	printf("party=%d format=%d secrets=%zu elements=%llu stored_bytes=%llu expanded_bytes=%llu "
	       "peak_rss_bind=%llu peak_rss_touch=%llu bind_s=%.2f touch_s=%.2f check=%llu\n",
	       sh->party, sh->version, sh->nsecret, (unsigned long long)numel,
	       (unsigned long long)stored, (unsigned long long)expanded,
	       (unsigned long long)rss_bind, (unsigned long long)cdm_peak_rss(), t1 - t0,
	       cdm_now() - t1, (unsigned long long)(sum & 0xffff));
	cdm_share_close(sh);
	return 0;
}
