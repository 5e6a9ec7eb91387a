/*
 * sample/model_seed: seed-derived model shares (share format 2, see
 * lib/fmt/share.h). The model owner draws one run key; x_0 and x_1 of
 * every weight are pseudo-random from the component seeds k_0 and k_1
 * derived from it (per tensor name: cdm_share_seed_expand) and
 * x_2 = x - x_0 - x_1 is the only component stored in full. Party i holds
 * (x_i, x_{i+1}):
 *   party 0: seeds k_0, k_1           (no weight data at all)
 *   party 1: seed k_1, x_2 stored
 *   party 2: x_2 stored, seed k_0
 * so each file carries only the seeds of its own two components: k_0 never
 * reaches party 1, k_1 never party 2, and no party learns more than with
 * two full components.
 */
#include <string.h>

#include "../fmt/share.h"
#include "../prg/prg.h"
#include "sample_impl.h"

/* k_j of the run key (j = 0, 1). */
static void comp_seed(const uint8_t key[CDM_SEED_BYTES], int j, uint8_t out[CDM_SEED_BYTES])
{
	cdm_prg_derive(key, j ? "model-seed-x1" : "model-seed-x0", 0, out);
}

int cdm_sample_writer_seeds(cdm_share_writer *w, const uint8_t key[CDM_SEED_BYTES], int p,
			    struct cdm_err *err)
{
	uint8_t k[2][CDM_SEED_BYTES];
	comp_seed(key, 0, k[0]);
	comp_seed(key, 1, k[1]);
	/* party p's components are x_p (a) and x_{p+1} (b); only x_0 and x_1
	 * have seeds */
	const uint8_t *a = p < 2 ? k[p] : NULL, *b = p == 0 ? k[1] : p == 2 ? k[0] : NULL;
	int rc = cdm_share_writer_seeds(w, a, b, err);
	memset(k, 0, sizeof k);
	return rc;
}

int cdm_sample_split_seeded(const uint8_t key[CDM_SEED_BYTES], const char *name,
			    const uint64_t *x, size_t n, int p, uint64_t *a, uint64_t *b,
			    struct cdm_err *err)
{
	if (p == 0) /* two seeds, nothing stored */
		return 0;
	uint8_t k[CDM_SEED_BYTES];
	uint64_t *x2 = p == 1 ? b : a;
	uint64_t *x1 = cdm_alloc(n ? n : 1, 8, err);
	if (!x1)
		return CDM_ENOMEM;
	comp_seed(key, 0, k);
	int rc = cdm_share_seed_expand(k, name, x2, n, err);
	comp_seed(key, 1, k);
	if (rc == 0)
		rc = cdm_share_seed_expand(k, name, x1, n, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		x2[i] = x[i] - x2[i] - x1[i];
	memset(k, 0, sizeof k);
	cdm_free(x1);
	return rc;
}
