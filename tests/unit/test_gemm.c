/*
 * test_gemm: cdm_ring_gemm must equal a naive triple loop mod 2^64, bit for
 * bit, on full-range random words, for shapes that hit every edge of the
 * blocking (MR = 8 rows, NR = 24 columns, KC = 256 deep, MC = 256 rows; the
 * narrow path for n < 8 with 512-deep slices), with and without
 * accumulation; and the GEMM benchmark must report consistent figures and
 * reject bad shapes.
 */
#include "bench/gemm.h"
#include "ring/ring.h"

#include <pthread.h>
#include <string.h>

#include "check.h"

static uint64_t rng;

static void fill(uint64_t *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = check_rand(&rng);
}

static void naive(uint64_t *c, const uint64_t *a, const uint64_t *b, size_t m, size_t k,
		  size_t n, int accumulate)
{
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			uint64_t s = accumulate ? c[i * n + j] : 0;
			for (size_t p = 0; p < k; p++)
				s += a[i * k + p] * b[p * n + j];
			c[i * n + j] = s;
		}
}

/* One shape, one accumulate flag: compare against the naive loop, and make
 * sure no word around C (guards on both sides) is written. */
static void check_shape(size_t m, size_t k, size_t n, int accumulate)
{
	struct cdm_err err = {0};
	const size_t guard = 40, total = m * n + 2 * guard;
	uint64_t *a = cdm_alloc(m * k + 1, sizeof *a, &err);
	uint64_t *b = cdm_alloc(k * n + 1, sizeof *b, &err);
	uint64_t *c = cdm_alloc(total, sizeof *c, &err);
	uint64_t *ref = cdm_alloc(total, sizeof *ref, &err);
	if (!a || !b || !c || !ref) {
		CHECK(0, "alloc %zux%zux%zu: %s", m, k, n, err.msg);
		goto out;
	}
	fill(a, m * k);
	fill(b, k * n);
	fill(c, total);
	memcpy(ref, c, total * sizeof *ref);
	naive(ref + guard, a, b, m, k, n, accumulate);
	cdm_ring_gemm(c + guard, a, b, m, k, n, accumulate);
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < m * n; i++)
		if (c[guard + i] != ref[guard + i] && bad++ == 0)
			first = i;
	CHECK(bad == 0, "gemm %zux%zux%zu acc=%d: %zu wrong words, first at %zu", m, k, n,
	      accumulate, bad, first);
	int same = memcmp(c, ref, guard * sizeof *c) == 0 &&
		   memcmp(c + guard + m * n, ref + guard + m * n, guard * sizeof *c) == 0;
	CHECK(same, "gemm %zux%zux%zu acc=%d: words around C changed", m, k, n, accumulate);
out:
	cdm_free(a);
	cdm_free(b);
	cdm_free(c);
	cdm_free(ref);
}

/* Known small product: checks the naive reference itself, including the
 * wrap-around mod 2^64 (2^63 * 2 = 0, (2^64-1)^2 = 1). */
static void check_known(void)
{
	const uint64_t a[2 * 3] = {1, 2, 3, UINT64_MAX, 1ULL << 63, 5};
	const uint64_t b[3 * 2] = {7, 8, UINT64_MAX, 2, 10, 0};
	/* row 0: 1*7 + 2*(2^64-1) + 3*10 = 7 - 2 + 30 = 35;  1*8 + 2*2 + 0 = 12
	 * row 1: (-1)*7 + 2^63*(-1) + 50 = 43 + 2^63;  (-1)*8 + 2^63*2 + 0 = -8 */
	const uint64_t want[4] = {35, 12, 43 + (1ULL << 63), (uint64_t)-8};
	uint64_t c[4], r[4];
	cdm_ring_gemm(c, a, b, 2, 3, 2, 0);
	naive(r, a, b, 2, 3, 2, 0);
	CHECK(memcmp(c, want, sizeof c) == 0, "known 2x3x2: got %llu %llu %llu %llu",
	      (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2],
	      (unsigned long long)c[3]);
	CHECK(memcmp(r, want, sizeof r) == 0, "naive reference disagrees on known 2x3x2");
	/* accumulate onto an existing C */
	uint64_t c2[4] = {1, 1, 1, 1};
	cdm_ring_gemm(c2, a, b, 2, 3, 2, 1);
	for (int i = 0; i < 4; i++)
		CHECK(c2[i] == want[i] + 1, "known 2x3x2 accumulate word %d", i);
}

/* k = 0: C is zeroed, or left alone when accumulating; m = 0 or n = 0 touch
 * nothing (NULL pointers are fine then). */
static void check_empty(void)
{
	uint64_t c[6] = {1, 2, 3, 4, 5, 6};
	uint64_t dummy = 0;
	cdm_ring_gemm(c, &dummy, &dummy, 2, 0, 3, 1);
	CHECK(c[0] == 1 && c[5] == 6, "k=0 accumulate changed C");
	cdm_ring_gemm(c, &dummy, &dummy, 2, 0, 3, 0);
	int zero = 1;
	for (int i = 0; i < 6; i++)
		zero = zero && c[i] == 0;
	CHECK(zero, "k=0 overwrite did not zero C");
	c[0] = 9;
	cdm_ring_gemm(c, NULL, NULL, 0, 5, 3, 0);
	cdm_ring_gemm(c, NULL, NULL, 2, 5, 0, 0);
	CHECK(c[0] == 9, "m=0 / n=0 changed C");
}

static void *thread_main(void *arg)
{
	(void)arg;
	check_shape(17, 130, 50, 0);
	return NULL;
}

static void check_bench(void)
{
	struct cdm_err err = {0};
	struct cdm_bench_gemm_result r;
	int rc = cdm_bench_gemm(16, 64, 40, 3, &r, &err);
	CHECK(rc == 0, "bench 16x64x40: rc %d: %s", rc, err.msg);
	if (rc == 0) {
		CHECK(r.m == 16 && r.k == 64 && r.n == 40, "bench shape echoed");
		CHECK(r.ring_seconds > 0 && r.f32_seconds > 0, "bench times %g %g",
		      r.ring_seconds, r.f32_seconds);
		double ops = 2.0 * 16 * 64 * 40;
		CHECK_NEAR(r.ring_gops, ops / r.ring_seconds / 1e9, 1e-9 * r.ring_gops,
			   "ring_gops formula");
		CHECK_NEAR(r.f32_gflops, ops / r.f32_seconds / 1e9, 1e-9 * r.f32_gflops,
			   "f32_gflops formula");
		CHECK_NEAR(r.ratio, r.ring_gops / r.f32_gflops, 1e-12 * r.ratio, "ratio");
	}
	rc = cdm_bench_gemm(0, 64, 40, 3, &r, &err);
	CHECK(rc == CDM_EINPUT && strstr(err.msg, "m"), "bench m=0: rc %d msg '%s'", rc,
	      err.msg);
	rc = cdm_bench_gemm(8, 8, 8, 0, &r, &err);
	CHECK(rc == CDM_EINPUT && strstr(err.msg, "reps"), "bench reps=0: rc %d '%s'", rc,
	      err.msg);
	rc = cdm_bench_gemm((size_t)1 << 40, 1 << 20, 8, 1, &r, &err);
	CHECK(rc == CDM_EINPUT, "bench dimension 2^40 accepted: rc %d", rc);
	rc = cdm_bench_gemm((size_t)1 << 20, (size_t)1 << 20, 8, 1, &r, &err);
	CHECK(rc == CDM_ENOMEM && strstr(err.msg, "bench gemm"),
	      "bench 2^40-word operand: rc %d '%s'", rc, err.msg);
}

int main(void)
{
	rng = check_seed();
	check_known();
	check_empty();

	/* Edges of every blocking dimension: 1, just below/at/above MR = 8,
	 * NR = 24, KC = 256, plus primes. */
	static const size_t ms[] = {1, 2, 7, 8, 9, 15, 16, 17, 33};
	static const size_t ks[] = {1, 2, 5, 255, 256, 257, 600};
	static const size_t ns[] = {1, 3, 8, 9, 16, 23, 24, 25, 47, 49, 100};
	for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
		for (size_t y = 0; y < sizeof ks / sizeof *ks; y++)
			for (size_t z = 0; z < sizeof ns / sizeof *ns; z++)
				check_shape(ms[x], ks[y], ns[z], (int)((x + y + z) & 1));
	/* both accumulate flags on a few shapes */
	check_shape(13, 129, 31, 0);
	check_shape(13, 129, 31, 1);
	check_shape(1, 700, 1, 0);    /* 1 x K x 1: a dot product */
	check_shape(1, 1, 1, 1);
	check_shape(5, 1100, 7, 1);   /* narrow path over three 512-deep slices */
	check_shape(11, 512, 6, 0);   /* narrow path, exactly one slice */
	check_shape(520, 3, 30, 1);   /* crosses MC = 256 twice */
	check_shape(257, 40, 25, 0);  /* one row past MC */
	check_shape(3, 1000, 70, 0);  /* large k: several KC slices */
	check_shape(64, 576, 50, 1); /* the conv shape, narrowed */

	/* the kernel keeps no state: a second thread gets the same answers */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0, "pthread_create");
	pthread_join(t, NULL);

	check_bench();
	return check_done();
}
