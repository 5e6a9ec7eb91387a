/* Fuzz target: the safetensors reader (and zstd) on arbitrary bytes. A
 * file that parses must be internally consistent: every tensor inside the
 * buffer, convertible when it is a float type. */
#include "../../lib/fmt/io.h"
#include "../../lib/fmt/st.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_st(const uint8_t *data, size_t size);

/* zstd inputs are decompressed here with a 1 MiB limit (the reader's own
 * path is the same function with a larger limit), so that mutated bombs
 * do not slow the fuzzer down to a crawl. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!cdm_is_zstd(data, size))
		return check_st(data, size);
	struct cdm_err err = {0};
	uint8_t *dec;
	size_t n;
	if (cdm_zstd_decompress(data, size, 1 << 20, "fuzz", &dec, &n, &err) < 0) {
		if (err.msg[0] == '\0' || err.code >= 0)
			abort();
		return 0;
	}
	if (n > (1 << 20))
		abort();
	check_st(dec, n);
	cdm_free(dec);
	return 0;
}

static int check_st(const uint8_t *data, size_t size)
{
	struct cdm_err err = {0};
	cdm_st *st = NULL;
	if (cdm_st_open_mem(&st, data, size, "fuzz", &err) < 0) {
		if (err.msg[0] == '\0' || err.code >= 0)
			abort(); /* a refusal must say why */
		return 0;
	}
	for (size_t i = 0; i < cdm_st_count(st); i++) {
		const struct cdm_st_tensor *t = cdm_st_at(st, i);
		if (cdm_st_find(st, t->name) != t)
			abort();
		if (t->nbytes != t->numel * cdm_dtype_size(t->dtype))
			abort();
		float *f = malloc(t->numel ? t->numel * sizeof *f : 1);
		int rc = cdm_st_to_f32(st, t, f, &err);
		int is_float = t->dtype == CDM_F32 || t->dtype == CDM_F16 || t->dtype == CDM_BF16 ||
			       t->dtype == CDM_F64;
		if ((rc == 0) != is_float)
			abort();
		free(f);
		/* touch every byte so ASan sees reads outside the buffer */
		volatile uint8_t sum = 0;
		for (uint64_t k = 0; k < t->nbytes; k++)
			sum ^= t->data[k];
	}
	for (size_t i = 0; i < cdm_st_meta_count(st); i++) {
		const char *k, *v;
		if (cdm_st_meta_at(st, i, &k, &v) < 0 || cdm_st_meta(st, k) != v)
			abort();
	}
	cdm_st_close(st);
	return 0;
}
