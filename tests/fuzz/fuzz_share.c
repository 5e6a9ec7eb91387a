/* Fuzz target: share-file validation on arbitrary bytes; a file that opens
 * yields every secret's components (seeded ones up to 2^20 elements) and is refused as its own partner. */
#include "../../lib/fmt/share.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdm_err err = {0};
	cdm_share *sh = NULL;
	if (cdm_share_open_mem(&sh, data, size, "fuzz.0", NULL, &err) < 0) {
		if (err.msg[0] == '\0' || err.code >= 0)
			abort();
		return 0;
	}
	if (sh->party < 0 || sh->party > 2)
		abort();
	for (size_t i = 0; i < sh->nsecret; i++) {
		const struct cdm_st_tensor *t = cdm_share_find(sh, sh->secret[i]);
		const uint64_t *a, *b;
		if (!t)
			abort();
		/* a seeded component is expanded (8 bytes an element), its size set
		 * by the index, not the input's length: skip big ones */
		if ((sh->seeded[0] || sh->seeded[1]) && t->numel > ((uint64_t)1 << 20))
			continue;
		if (cdm_share_get(sh, sh->secret[i], t->ndim, t->shape, &a, &b, &err) < 0)
			abort();
		volatile uint64_t sum = 0;
		for (uint64_t k = 0; k < t->numel; k++)
			sum += a[k] ^ b[k];
	}
	cdm_share *pair[2] = {sh, sh};
	if (cdm_share_check_set(pair, 2, &err) == 0)
		abort();
	cdm_share_close(sh);
	return 0;
}
