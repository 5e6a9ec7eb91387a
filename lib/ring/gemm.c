/*
 * Ring GEMM over Z_2^64: C[m x n] (+)= A[m x k] * B[k x n], row-major.
 *
 * uint64 multiplication and addition wrap exactly as the ring needs, so this
 * is an ordinary integer GEMM; there is no rounding to reason about and every
 * path must give bit-identical results (tests/unit/test_gemm.c checks them
 * against a naive triple loop).
 *
 * Structure (Goto-style, simplified because the kernel is multiply-bound):
 *   for each KC-deep slice of k and MC-high block of rows of A:
 *     for each NR-wide strip of columns of B:
 *       pack the KC x NR strip of B into a contiguous, zero-padded buffer
 *       (on the stack: 128 x 24 x 8 = 24 KiB, stays in L1);
 *       for each MR-high group of rows: the register-blocked micro-kernel
 *       updates an MR x NR tile of C, reading A in place (row stride k).
 * A is not packed: the micro-kernel reads one broadcast element per row and
 * k step, eight sequential streams that the prefetchers follow, and the
 * multiplier (not the loads) is the bottleneck. No heap memory is used, so
 * the function cannot fail and is safe to call from any thread.
 *
 * Multiply choice (measured on the target AMD Zen 4, see lib/bench/gemm.c):
 * vpmullq zmm sustains one per cycle there, the same rate as vpmuludq or
 * vpmadd52luq, so the three-vpmuludq 32-bit decomposition and IFMA limbs
 * would only add work. One vpmullq + one vpaddq per 8 products is the peak:
 * half the multiply-add rate of float32 FMA on the same core.
 *
 * Without AVX-512F/DQ at compile time a portable C micro-kernel with the
 * same packing is used (the compiler vectorises what it can).
 */
#include "ring.h"

#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define GEMM_AVX512 1
#else
#define GEMM_AVX512 0
#endif

#define MR 8   /* rows of C per micro-tile */
#define NV 3   /* 8-lane vectors per micro-tile row */
#define NR 24  /* columns of C per micro-tile (NV * 8) */
#define KC 128 /* depth of one slice: the packed B strip is KC * NR words */
#define MC 512 /* rows per block: A block MC x KC (512 KiB) stays in L2 */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Copy the kc x nr block of B at (p0, j0) into bp as kc rows of NR words,
 * zero-padding columns nr..NR-1 so the kernel can run full-width. */
static void pack_b(uint64_t *restrict bp, const uint64_t *restrict b, size_t ldb,
		   size_t kc, size_t nr)
{
	for (size_t p = 0; p < kc; p++) {
		const uint64_t *src = b + p * ldb;
		uint64_t *dst = bp + p * NR;
		memcpy(dst, src, nr * sizeof *dst);
		if (nr < NR)
			memset(dst + nr, 0, (NR - nr) * sizeof *dst);
	}
}

#if GEMM_AVX512

/* Lanes of vector v that hold one of the nr valid columns. */
ALWAYS_INLINE __mmask8 lane_mask(size_t nr, int v)
{
	size_t lo = (size_t)v * 8;
	if (nr >= lo + 8)
		return 0xff;
	if (nr <= lo)
		return 0;
	return (__mmask8)((1u << (nr - lo)) - 1);
}

/*
 * The micro-kernel: tile C[0..mr) x [0..nr) (+)= A[0..mr) x [0..kc) * bp.
 * mr (1..MR) and nv (1..NV, the vectors actually needed for nr columns) are
 * compile-time constants at every call site (see kernel_dispatch) and the
 * small loops are unrolled (gcc -O2 would not), so the accumulators live in
 * zmm registers: 8 x 3 = 24 of the 32.
 */
ALWAYS_INLINE void kernel_avx512(const int mr, const int nv, size_t kc,
				 const uint64_t *restrict a, size_t lda,
				 const uint64_t *restrict bp, uint64_t *restrict c,
				 size_t ldc, size_t nr, int load_c)
{
	__m512i acc[MR][NV];
	__mmask8 mask[NV];
	#pragma GCC unroll 8
	for (int v = 0; v < nv; v++)
		mask[v] = lane_mask(nr, v);
	#pragma GCC unroll 8
	for (int i = 0; i < mr; i++)
		#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			acc[i][v] = load_c ? _mm512_maskz_loadu_epi64(mask[v], c + i * ldc + v * 8)
					   : _mm512_setzero_si512();
	for (size_t p = 0; p < kc; p++) {
		__m512i bv[NV];
		#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			bv[v] = _mm512_load_si512((const void *)(bp + p * NR + v * 8));
		#pragma GCC unroll 8
		for (int i = 0; i < mr; i++) {
			__m512i av = _mm512_set1_epi64((long long)a[i * lda + p]);
			#pragma GCC unroll 8
			for (int v = 0; v < nv; v++)
				acc[i][v] = _mm512_add_epi64(acc[i][v],
							     _mm512_mullo_epi64(av, bv[v]));
		}
	}
	#pragma GCC unroll 8
	for (int i = 0; i < mr; i++)
		#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			_mm512_mask_storeu_epi64(c + i * ldc + v * 8, mask[v], acc[i][v]);
}

#define KERNEL_CASE(MR_, NV_)                                                  \
	case (MR_) * 4 + (NV_):                                                \
		kernel_avx512(MR_, NV_, kc, a, lda, bp, c, ldc, nr, load_c);   \
		return

#define KERNEL_ROW(MR_) KERNEL_CASE(MR_, 1); KERNEL_CASE(MR_, 2); KERNEL_CASE(MR_, 3)

/* Pick the instantiation for this tile's height and width. */
static void kernel_dispatch(size_t mr, size_t kc, const uint64_t *restrict a, size_t lda,
			    const uint64_t *restrict bp, uint64_t *restrict c, size_t ldc,
			    size_t nr, int load_c)
{
	size_t nv = (nr + 7) / 8;
	switch (mr * 4 + nv) {
		KERNEL_ROW(1);
		KERNEL_ROW(2);
		KERNEL_ROW(3);
		KERNEL_ROW(4);
		KERNEL_ROW(5);
		KERNEL_ROW(6);
		KERNEL_ROW(7);
		KERNEL_ROW(8);
	default:
		return; /* unreachable: 1 <= mr <= MR, 1 <= nv <= NV */
	}
}

#else /* portable */

/* Same contract as the AVX-512 kernel, in plain C on a local tile. */
static void kernel_dispatch(size_t mr, size_t kc, const uint64_t *restrict a, size_t lda,
			    const uint64_t *restrict bp, uint64_t *restrict c, size_t ldc,
			    size_t nr, int load_c)
{
	uint64_t acc[MR][NR];
	memset(acc, 0, sizeof acc);
	for (size_t p = 0; p < kc; p++) {
		const uint64_t *restrict bq = bp + p * NR;
		for (size_t i = 0; i < mr; i++) {
			uint64_t av = a[i * lda + p];
			for (size_t j = 0; j < NR; j++)
				acc[i][j] += av * bq[j];
		}
	}
	for (size_t i = 0; i < mr; i++)
		for (size_t j = 0; j < nr; j++)
			c[i * ldc + j] = (load_c ? c[i * ldc + j] : 0) + acc[i][j];
}

#endif

void cdm_ring_gemm(uint64_t *c, const uint64_t *a, const uint64_t *b, size_t m,
		   size_t k, size_t n, int accumulate)
{
	/* 64-byte aligned so the kernel can use aligned loads. */
	_Alignas(64) uint64_t bp[KC * NR];

	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		/* Empty sum: C = 0, or unchanged when accumulating. */
		if (!accumulate)
			memset(c, 0, m * n * sizeof *c);
		return;
	}
	for (size_t p0 = 0; p0 < k; p0 += KC) {
		size_t kc = k - p0 < KC ? k - p0 : KC;
		/* The first slice overwrites C unless accumulating; later
		 * slices always add to what the earlier ones left. */
		int load_c = accumulate || p0 > 0;
		for (size_t i0 = 0; i0 < m; i0 += MC) {
			size_t mc = m - i0 < MC ? m - i0 : MC;
			for (size_t j0 = 0; j0 < n; j0 += NR) {
				size_t nr = n - j0 < NR ? n - j0 : NR;
				pack_b(bp, b + p0 * n + j0, n, kc, nr);
				for (size_t i = i0; i < i0 + mc; i += MR) {
					size_t mr = i0 + mc - i < MR ? i0 + mc - i : MR;
					kernel_dispatch(mr, kc, a + i * k + p0, k, bp,
							c + i * n + j0, n, nr, load_c);
				}
			}
		}
	}
}
