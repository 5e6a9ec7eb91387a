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
 *       for each MR-high group of rows: the register-blocked micro-kernel
 *       updates an MR x NR tile of C (8 x 24 words in 24 zmm registers).
 * Neither A nor B is packed. The kernel needs one multiply per 8 products
 * but only 3 vector loads and 8 broadcasts per 24 multiplies, so the loads
 * can come from L2 without slowing it; measured on the target, packing B
 * strips (and copying them) was 3-10% slower than reading B in place, also
 * for power-of-two row strides. Edge tiles use masked loads and stores,
 * which never touch memory outside A, B and C. No heap memory is used, so
 * the function cannot fail and is safe to call from any thread. Large
 * products are split over the --threads pool (lib/ring/pool.h).
 *
 * B with fewer than 8 columns (matrix-vector products) runs as dot products
 * along k against a transposed copy of a k slice of B (28 KiB on the stack).
 *
 * Multiply choice (measured on the target AMD Zen 4): vpmullq zmm issues
 * once per cycle there, the same rate as vpmuludq or vpmadd52luq, so the
 * three-vpmuludq 32-bit decomposition and IFMA 52-bit limbs would only add
 * work. With the dependent vpaddq the mix sustains about 0.75 vpmullq per
 * cycle (6 products/cycle, ~44 GOPS at 3.6 GHz, counting multiply and add);
 * the kernel reaches 80-90% of that. float32 FMA does 16 multiply-adds per
 * cycle, so the ring/float32 ratio is bounded by about 0.4.
 *
 * Without AVX-512F/DQ at compile time, portable C kernels with the same
 * blocking are used (the compiler vectorises what it can).
 */
#include "ring.h"
#include "pool.h"

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
#define KC 256 /* depth of one k slice: C tiles are loaded/stored once per slice */
#define MC 256 /* rows per block: the A block MC x KC (512 KiB) is reused from L2 */
/* B with fewer than NARROW_N columns would waste most of each 8-lane vector
 * in the tile kernel; such products run as dot products along k instead. */
#define NARROW_N 8
#define NARROW_KC 512

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Copy the kc x n block of B (n <= NARROW_N) transposed into bt: row j of bt
 * is column j of B, NARROW_KC words apart, so dot products run along k. */
static void pack_bt(uint64_t *restrict bt, const uint64_t *restrict b, size_t n,
		    size_t ldb, size_t kc)
{
	for (size_t p = 0; p < kc; p++)
		for (size_t j = 0; j < n; j++)
			bt[j * NARROW_KC + p] = b[p * ldb + j];
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
 * The micro-kernel: tile C[0..mr) x [0..nr) (+)= A[0..mr) x [0..kc) times
 * the kc x nr strip of B at b (row stride ldb), read in place.
 * mr (1..MR) and nv (1..NV, the vectors actually needed for nr columns) are
 * compile-time constants at every call site (see kernel_dispatch) and the
 * small loops are unrolled (gcc -O2 would not), so the accumulators live in
 * zmm registers: 8 x 3 = 24 of the 32.
 */
ALWAYS_INLINE void kernel_avx512(const int mr, const int nv, size_t kc,
				 const uint64_t *restrict a, size_t lda,
				 const uint64_t *restrict b, size_t ldb,
				 uint64_t *restrict c, size_t ldc, size_t nr, int load_c)
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
			bv[v] = _mm512_maskz_loadu_epi64(mask[v], b + p * ldb + v * 8);
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
		kernel_avx512(MR_, NV_, kc, a, lda, b, ldb, c, ldc, nr, load_c);  \
		return

#define KERNEL_ROW(MR_) KERNEL_CASE(MR_, 1); KERNEL_CASE(MR_, 2); KERNEL_CASE(MR_, 3)

/* Pick the instantiation for this tile's height and width. */
static void kernel_dispatch(size_t mr, size_t kc, const uint64_t *restrict a, size_t lda,
			    const uint64_t *restrict b, size_t ldb, uint64_t *restrict c,
			    size_t ldc, size_t nr, int load_c)
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

/* Sum of the 8 lanes mod 2^64. (_mm512_reduce_add_epi64 adds in signed
 * long long, which is undefined on overflow and trips UBSan.) */
ALWAYS_INLINE uint64_t lane_sum(__m512i v)
{
	__m256i s4 = _mm256_add_epi64(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
	__m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
	return (uint64_t)_mm_cvtsi128_si64(s2) + (uint64_t)_mm_extract_epi64(s2, 1);
}

/* One row of C against a transposed narrow B: c[j] (+)= a[0..kc) . bt[j].
 * n (1..NARROW_N-1) is a compile-time constant at each call site. */
ALWAYS_INLINE void dot_avx512(const int n, size_t kc, const uint64_t *restrict a,
			      const uint64_t *restrict bt, uint64_t *restrict c, int load_c)
{
	__m512i acc[NARROW_N];
#pragma GCC unroll 8
	for (int j = 0; j < n; j++)
		acc[j] = _mm512_setzero_si512();
	for (size_t p = 0; p < kc; p += 8) {
		__mmask8 mk = kc - p >= 8 ? 0xff : (__mmask8)((1u << (kc - p)) - 1);
		__m512i av = _mm512_maskz_loadu_epi64(mk, a + p);
#pragma GCC unroll 8
		for (int j = 0; j < n; j++)
			acc[j] = _mm512_add_epi64(
				acc[j], _mm512_mullo_epi64(av, _mm512_maskz_loadu_epi64(
								       mk, bt + j * NARROW_KC + p)));
	}
#pragma GCC unroll 8
	for (int j = 0; j < n; j++)
		c[j] = (load_c ? c[j] : 0) + lane_sum(acc[j]);
}

#define DOT_CASE(N_)                                                           \
	case N_:                                                               \
		dot_avx512(N_, kc, a, bt, c, load_c);                          \
		return

static void dot_dispatch(size_t n, size_t kc, const uint64_t *restrict a,
			 const uint64_t *restrict bt, uint64_t *restrict c, int load_c)
{
	switch (n) {
		DOT_CASE(1);
		DOT_CASE(2);
		DOT_CASE(3);
		DOT_CASE(4);
		DOT_CASE(5);
		DOT_CASE(6);
		DOT_CASE(7);
	default:
		return; /* unreachable: 1 <= n < NARROW_N */
	}
}

#else /* portable */

/* Same contract as the AVX-512 kernel, in plain C on a local tile. */
static void kernel_dispatch(size_t mr, size_t kc, const uint64_t *restrict a, size_t lda,
			    const uint64_t *restrict b, size_t ldb, uint64_t *restrict c,
			    size_t ldc, size_t nr, int load_c)
{
	uint64_t acc[MR][NR];
	memset(acc, 0, sizeof acc);
	for (size_t p = 0; p < kc; p++) {
		const uint64_t *restrict bq = b + p * ldb;
		for (size_t i = 0; i < mr; i++) {
			uint64_t av = a[i * lda + p];
			for (size_t j = 0; j < nr; j++)
				acc[i][j] += av * bq[j];
		}
	}
	for (size_t i = 0; i < mr; i++)
		for (size_t j = 0; j < nr; j++)
			c[i * ldc + j] = (load_c ? c[i * ldc + j] : 0) + acc[i][j];
}


static void dot_dispatch(size_t n, size_t kc, const uint64_t *restrict a,
			 const uint64_t *restrict bt, uint64_t *restrict c, int load_c)
{
	for (size_t j = 0; j < n; j++) {
		uint64_t s = load_c ? c[j] : 0;
		for (size_t p = 0; p < kc; p++)
			s += a[p] * bt[j * NARROW_KC + p];
		c[j] = s;
	}
}

#endif

/* One sub-problem: C (ldc) (+)= A (lda) x B (ldb), m x k x n. The whole
 * product, or one part of it on the pool. */
struct gemm_args {
	uint64_t *c;
	const uint64_t *a, *b;
	size_t m, k, n, lda, ldb, ldc;
	int accumulate;
};

/* Narrow B (n < NARROW_N): for each k slice, transpose B and take one dot
 * product per element of C. */
static void gemm_narrow(const struct gemm_args *g)
{
	_Alignas(64) uint64_t bt[NARROW_N * NARROW_KC];

	for (size_t p0 = 0; p0 < g->k; p0 += NARROW_KC) {
		size_t kc = g->k - p0 < NARROW_KC ? g->k - p0 : NARROW_KC;
		int load_c = g->accumulate || p0 > 0;
		pack_bt(bt, g->b + p0 * g->ldb, g->n, g->ldb, kc);
		for (size_t i = 0; i < g->m; i++)
			dot_dispatch(g->n, kc, g->a + i * g->lda + p0, bt, g->c + i * g->ldc,
				     load_c);
	}
}

/* One MC x KC block of A against the KC-deep slice of B, strip by strip:
 * the KC x NR strip of B (48 KiB) is reused by every row tile of the block. */
static void gemm_block(uint64_t *c, size_t ldc, const uint64_t *a, size_t lda,
		       const uint64_t *b, size_t ldb, size_t mc, size_t kc, size_t n,
		       int load_c)
{
	for (size_t j0 = 0; j0 < n; j0 += NR) {
		size_t nr = n - j0 < NR ? n - j0 : NR;
		for (size_t i = 0; i < mc; i += MR) {
			size_t mr = mc - i < MR ? mc - i : MR;
			kernel_dispatch(mr, kc, a + i * lda, lda, b + j0, ldb, c + i * ldc + j0,
					ldc, nr, load_c);
		}
	}
}

static void gemm_serial(const struct gemm_args *g)
{
	if (g->m == 0 || g->n == 0)
		return;
	if (g->n < NARROW_N) {
		gemm_narrow(g);
		return;
	}
	for (size_t p0 = 0; p0 < g->k; p0 += KC) {
		size_t kc = g->k - p0 < KC ? g->k - p0 : KC;
		/* The first slice overwrites C unless accumulating; later
		 * slices always add to what the earlier ones left. */
		int load_c = g->accumulate || p0 > 0;
		for (size_t i0 = 0; i0 < g->m; i0 += MC) {
			size_t mc = g->m - i0 < MC ? g->m - i0 : MC;
			gemm_block(g->c + i0 * g->ldc, g->ldc, g->a + i0 * g->lda + p0, g->lda,
				   g->b + p0 * g->ldb, g->ldb, mc, kc, g->n, load_c);
		}
	}
}

/*
 * Parallel split (--threads): each part owns a block of C, rows when C is
 * at least as high as wide (or B is narrow), else columns, in whole
 * micro-tiles. Every element of C is computed by the same code whatever the
 * split, and ring arithmetic is exact, so the result is bit-identical to
 * one thread.
 */
static void gemm_part(void *arg, int part, int nparts)
{
	const struct gemm_args *g = arg;
	struct gemm_args s = *g;
	size_t lo, hi;
	if (g->m >= g->n || g->n < NARROW_N) {
		cdm_ring_part(g->m, MR, part, nparts, &lo, &hi);
		s.c = g->c + lo * g->ldc;
		s.a = g->a + lo * g->lda;
		s.m = hi - lo;
	} else {
		cdm_ring_part(g->n, NR, part, nparts, &lo, &hi);
		s.c = g->c + lo;
		s.b = g->b + lo;
		s.n = hi - lo; /* a thin last part (< NARROW_N) takes the dot path */
	}
	gemm_serial(&s);
}

/* Products below this many multiply-adds run on the calling thread: a
 * pool wake-up costs 5-20 microseconds, a tenth of 2^20 multiply-adds
 * (the 3x3 convolutions of the mnist UNet are 1.8M). */
#define GEMM_PAR_MIN ((size_t)1 << 20)

void cdm_ring_gemm(uint64_t *c, const uint64_t *a, const uint64_t *b, size_t m,
		   size_t k, size_t n, int accumulate)
{
	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		/* Empty sum: C = 0, or unchanged when accumulating. */
		if (!accumulate)
			memset(c, 0, m * n * sizeof *c);
		return;
	}
	struct gemm_args g = {c, a, b, m, k, n, k, n, n, accumulate};
	if (cdm_ring_threads() > 1 && m * k * n >= GEMM_PAR_MIN)
		cdm_ring_parallel(gemm_part, &g);
	else
		gemm_serial(&g);
}
