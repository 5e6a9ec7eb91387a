/*
 * test_pool: the --threads pool (lib/ring/pool.h). With N = 1, 2 and 3
 * threads the ring GEMM, the PRG expansion and the secure multiplication
 * and matrix product (whose zero-sharing and truncation randomness come
 * from the PRG) must give bit-identical results, on odd shapes above the
 * parallel thresholds; the N = 1 GEMM must equal a naive loop (so the
 * comparison is against a correct reference); concurrent callers must get
 * correct results while the pool is busy; bad thread counts are refused.
 */
#include "mpc_harness.h"
#include "prg/prg.h"
#include "ring/pool.h"
#include "ring/ring.h"

#include <string.h>

#include "check.h"

static uint64_t rng;

static void fill(uint64_t *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = check_rand(&rng);
}

static void set_threads(int n)
{
	struct cdm_err err = {0};
	int rc = cdm_ring_threads_set(n, &err);
	CHECK(rc == 0 && cdm_ring_threads() == n, "threads %d: rc %d %s", n, rc, err.msg);
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

/* One shape: N = 1 against the naive loop, then N = 2, 3 against N = 1,
 * with guard words around C that must stay untouched. */
static void gemm_shape(size_t m, size_t k, size_t n, int accumulate, int with_naive)
{
	struct cdm_err err = {0};
	const size_t g = 33, total = m * n + 2 * g;
	uint64_t *a = cdm_alloc(m * k, 8, &err), *b = cdm_alloc(k * n, 8, &err);
	uint64_t *c0 = cdm_alloc(total, 8, &err), *ref = cdm_alloc(total, 8, &err);
	uint64_t *c = cdm_alloc(total, 8, &err);
	if (!a || !b || !c0 || !ref || !c) {
		CHECK(0, "alloc: %s", err.msg);
		goto out;
	}
	fill(a, m * k);
	fill(b, k * n);
	fill(c0, total);
	memcpy(ref, c0, total * 8);
	set_threads(1);
	cdm_ring_gemm(ref + g, a, b, m, k, n, accumulate);
	if (with_naive) {
		memcpy(c, c0, total * 8);
		naive(c + g, a, b, m, k, n, accumulate);
		CHECK(memcmp(c, ref, total * 8) == 0, "gemm %zux%zux%zu N=1 differs from naive",
		      m, k, n);
	}
	for (int nt = 2; nt <= 3; nt++) {
		set_threads(nt);
		memcpy(c, c0, total * 8);
		cdm_ring_gemm(c + g, a, b, m, k, n, accumulate);
		CHECK(memcmp(c, ref, total * 8) == 0, "gemm %zux%zux%zu acc %d: N=%d differs from N=1",
		      m, k, n, accumulate, nt);
	}
out:
	free(a);
	free(b);
	free(c0);
	free(ref);
	free(c);
}

/* A PRG call sequence (small, large odd-length, small) must give the same
 * bytes for every N, and the stream must continue correctly afterwards. */
static void prg_sequence(size_t big)
{
	static const uint8_t seed[CDM_SEED_BYTES] = {1, 2, 3, 4, 5};
	struct cdm_err err = {0};
	size_t total = 17 + big + 40;
	uint8_t *ref = malloc(total), *out = malloc(total);
	if (!ref || !out) {
		CHECK(0, "alloc");
		goto out;
	}
	for (int nt = 1; nt <= 3; nt++) {
		set_threads(nt);
		uint8_t *buf = nt == 1 ? ref : out;
		cdm_prg g;
		if (cdm_prg_init(&g, seed, &err) < 0) {
			CHECK(0, "prg init: %s", err.msg);
			goto out;
		}
		cdm_prg_bytes(&g, buf, 17);
		cdm_prg_bytes(&g, buf + 17, big);
		cdm_prg_bytes(&g, buf + 17 + big, 40);
		CHECK(g.blocks == 2 + (big + 15) / 16 + 3, "prg blocks %llu", (unsigned long long)g.blocks);
		cdm_prg_free(&g);
		if (nt > 1)
			CHECK(memcmp(out, ref, total) == 0, "prg %zu bytes: N=%d differs from N=1", big, nt);
	}
	/* A reader opened ahead sees the same bytes as the main stream. */
	cdm_prg g, r = {0};
	if (cdm_prg_init(&g, seed, &err) == 0 && cdm_prg_open_at(&r, &g, 2, &err) == 0) {
		uint8_t x[64];
		cdm_prg_bytes(&r, x, sizeof x);
		/* the 17-byte call used blocks 0-1: block 2 starts at ref + 17 */
		CHECK(memcmp(x, ref + 17, sizeof x) == 0, "prg reader at block 2");
		cdm_prg_skip(&g, 2 + (big + 15) / 16);
		cdm_prg_bytes(&g, x, 40);
		CHECK(memcmp(x, ref + 17 + big, 40) == 0, "prg after skip");
	} else {
		CHECK(0, "prg: %s", err.msg);
	}
	cdm_prg_free(&g);
	cdm_prg_free(&r);
out:
	free(ref);
	free(out);
}

/* ---- secure products ------------------------------------------------------- */

#define SN 40001 /* elements of the secure multiplication (above the zero-add threshold) */
#define MM 67
#define MK 181
#define MN 173 /* matmul 67 x 181 x 173 = 2.1M multiply-adds per share half */

struct sec_arg {
	const uint64_t *x, *y, *a, *b;
	uint64_t *mul_a, *mul_b, *mm_a, *mm_b; /* this party's result shares */
	int rc;
	char msg[256];
};

static void sec_party(cdm_mpc *m, void *p)
{
	struct sec_arg *s = p;
	struct cdm_err err = {0};
	cdm_shr x = {0}, y = {0}, z = {0}, a = {0}, b = {0}, c = {0};
	s->rc = cdm_mpc_input(m, 0, s->x, SN, &x, &err);
	if (!s->rc)
		s->rc = cdm_mpc_input(m, 1, s->y, SN, &y, &err);
	if (!s->rc)
		s->rc = cdm_mpc_mul_trunc(m, &z, &x, &y, &err);
	if (!s->rc)
		s->rc = cdm_mpc_input(m, 2, s->a, MM * MK, &a, &err);
	if (!s->rc)
		s->rc = cdm_mpc_input(m, 0, s->b, MK * MN, &b, &err);
	if (!s->rc)
		s->rc = cdm_mpc_matmul(m, &c, &a, &b, 1, MM, MK, MN, cdm_mpc_frac(m), &err);
	if (!s->rc) {
		memcpy(s->mul_a, z.a, SN * 8);
		memcpy(s->mul_b, z.b, SN * 8);
		memcpy(s->mm_a, c.a, MM * MN * 8);
		memcpy(s->mm_b, c.b, MM * MN * 8);
	}
	snprintf(s->msg, sizeof s->msg, "%s", err.msg);
	cdm_shr_free(&x);
	cdm_shr_free(&y);
	cdm_shr_free(&z);
	cdm_shr_free(&a);
	cdm_shr_free(&b);
	cdm_shr_free(&c);
}

static void secure_products(void)
{
	size_t per = 2 * SN + 2 * MM * MN;
	uint64_t *in = calloc(2 * SN + MM * MK + MK * MN, 8);
	uint64_t *res = calloc(3 * 3 * per, 8); /* [N][party][per] */
	if (!in || !res) {
		CHECK(0, "alloc");
		goto out;
	}
	for (size_t i = 0; i < 2 * SN + MM * MK + MK * MN; i++)
		in[i] = cdm_fxp_from_double(check_uniform(&rng, -4, 4), CDM_FRAC_BITS_DEFAULT);
	for (int nt = 1; nt <= 3; nt++) {
		set_threads(nt);
		struct sec_arg arg[3];
		void *args[3];
		for (int p = 0; p < 3; p++) {
			uint64_t *r = res + ((size_t)(nt - 1) * 3 + p) * per;
			arg[p] = (struct sec_arg){in, in + SN, in + 2 * SN, in + 2 * SN + MM * MK,
						  r, r + SN, r + 2 * SN, r + 2 * SN + MM * MN, 0, ""};
			args[p] = &arg[p];
		}
		CHECK(mpc_run3(sec_party, args) == 0, "mpc_run3 N=%d", nt);
		for (int p = 0; p < 3; p++)
			CHECK(arg[p].rc == 0, "N=%d party %d: %s", nt, p, arg[p].msg);
		if (nt > 1)
			CHECK(memcmp(res, res + (size_t)(nt - 1) * 3 * per, 3 * per * 8) == 0,
			      "secure mul/matmul shares: N=%d differ from N=1", nt);
	}
	/* The N = 1 product is right (within the truncation's 1 LSB + fixed-
	 * point rounding), so the comparison above is against a real result. */
	double worst = 0;
	for (size_t i = 0; i < SN; i += 97) {
		uint64_t v = res[i] + res[SN + i] + res[per + SN + i]; /* x0 + x1 + x2 */
		double got = cdm_fxp_to_double(v, CDM_FRAC_BITS_DEFAULT);
		double want = cdm_fxp_to_double(in[i], CDM_FRAC_BITS_DEFAULT) *
			      cdm_fxp_to_double(in[SN + i], CDM_FRAC_BITS_DEFAULT);
		if (fabs(got - want) > worst)
			worst = fabs(got - want);
	}
	CHECK(worst < 1e-5, "secure mul N=1: max error %g", worst);
out:
	free(in);
	free(res);
}

/* ---- concurrent callers ---------------------------------------------------- */

struct conc {
	const uint64_t *a, *b;
	uint64_t *c;
};

static void *conc_main(void *p)
{
	struct conc *t = p;
	for (int r = 0; r < 4; r++)
		cdm_ring_gemm(t->c, t->a, t->b, 96, 160, 160, 0);
	return NULL;
}

static void concurrent(void)
{
	struct cdm_err err = {0};
	uint64_t *a = cdm_alloc(96 * 160, 8, &err), *b = cdm_alloc(160 * 160, 8, &err);
	uint64_t *ref = cdm_alloc(96 * 160, 8, &err), *c = cdm_alloc(4 * 96 * 160, 8, &err);
	if (!a || !b || !ref || !c) {
		CHECK(0, "alloc: %s", err.msg);
		goto out;
	}
	fill(a, 96 * 160);
	fill(b, 160 * 160);
	naive(ref, a, b, 96, 160, 160, 0);
	set_threads(3);
	pthread_t th[4];
	struct conc t[4];
	for (int i = 0; i < 4; i++) {
		t[i] = (struct conc){a, b, c + (size_t)i * 96 * 160};
		CHECK(pthread_create(&th[i], NULL, conc_main, &t[i]) == 0, "thread %d", i);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		CHECK(memcmp(c + (size_t)i * 96 * 160, ref, 96 * 160 * 8) == 0,
		      "concurrent caller %d: wrong product", i);
out:
	free(a);
	free(b);
	free(ref);
	free(c);
}

int main(void)
{
	rng = check_seed();
	struct cdm_err err = {0};

	/* 1. Bad counts are refused with a message; the pool stays usable. */
	CHECK(cdm_ring_threads_set(0, &err) == CDM_EINPUT && strstr(err.msg, "threads: 0"),
	      "threads 0: %s", err.msg);
	CHECK(cdm_ring_threads_set(CDM_THREADS_MAX + 1, &err) == CDM_EINPUT, "threads 65");
	CHECK(cdm_ring_threads() == 1, "still 1 thread");

	/* 2. Partitions cover [0, n) in aligned, ordered, disjoint pieces. */
	for (int np = 1; np <= 5; np++) {
		size_t prev = 0, lo, hi;
		for (int p = 0; p < np; p++) {
			cdm_ring_part(1003, 8, p, np, &lo, &hi);
			CHECK(lo == prev && hi >= lo && (lo % 8 == 0 || lo == 1003),
			      "part %d/%d: [%zu,%zu)", p, np, lo, hi);
			prev = hi;
		}
		CHECK(prev == 1003, "parts of %d end at %zu", np, prev);
	}

	/* 3. GEMM: tall, wide, narrow (n < 8), k beyond one slice, accumulate;
	 * all above the 2^21 multiply-add threshold. */
	gemm_shape(37, 301, 203, 0, 1);
	gemm_shape(331, 77, 97, 1, 1);
	gemm_shape(9, 263, 1001, 0, 1);
	gemm_shape(1031, 515, 5, 1, 1);
	gemm_shape(13, 1027, 171, 1, 0);
	gemm_shape(3, 70001, 11, 0, 0);

	/* 4. PRG: lengths that are not a multiple of 16 or of the part size. */
	prg_sequence((size_t)256 << 10);
	prg_sequence(1000003);

	/* 5. Secure mul_trunc and matmul shares, N = 1, 2, 3. */
	secure_products();

	/* 6. Four threads calling GEMM at once on a 3-thread pool. */
	concurrent();

	set_threads(1);
	return check_done();
}
