/*
 * Ring GEMM over Z_2^64. uint64 multiplication wraps exactly as the ring
 * needs, so the kernel is an ordinary integer GEMM: blocked for cache, with
 * an i-k-j inner order the compiler vectorises (vpmullq under AVX-512DQ).
 */
#include "ring.h"

#include <string.h>

#define BLK_K 256
#define BLK_N 512

void cdm_ring_gemm(uint64_t *c, const uint64_t *a, const uint64_t *b, size_t m,
		   size_t k, size_t n, int accumulate)
{
	if (!accumulate)
		memset(c, 0, m * n * sizeof *c);
	for (size_t k0 = 0; k0 < k; k0 += BLK_K) {
		size_t k1 = k0 + BLK_K < k ? k0 + BLK_K : k;
		for (size_t j0 = 0; j0 < n; j0 += BLK_N) {
			size_t j1 = j0 + BLK_N < n ? j0 + BLK_N : n;
			for (size_t i = 0; i < m; i++) {
				uint64_t *restrict ci = c + i * n;
				const uint64_t *ai = a + i * k;
				for (size_t p = k0; p < k1; p++) {
					uint64_t av = ai[p];
					const uint64_t *restrict bp = b + p * n;
					for (size_t j = j0; j < j1; j++)
						ci[j] += av * bp[j];
				}
			}
		}
	}
}
