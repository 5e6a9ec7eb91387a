/* bench/gemm: ring GEMM against float32 GEMM (see gemm.h). */
#include "gemm.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

#include "../ring/ring.h"

/* Dimensions above this are refused before allocating (a 2^20-long side is
 * far beyond any layer of our models). */
#define BENCH_DIM_MAX ((size_t)1 << 20)
#define BENCH_REPS_MAX 10000

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* splitmix64: deterministic operands, so repeated runs time the same work. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct operands {
	uint64_t *ra, *rb, *rc;
	float *fa, *fb, *fc;
};

static void operands_free(struct operands *o)
{
	cdm_free(o->ra);
	cdm_free(o->rb);
	cdm_free(o->rc);
	cdm_free(o->fa);
	cdm_free(o->fb);
	cdm_free(o->fc);
}

static int operands_new(struct operands *o, size_t m, size_t k, size_t n,
			struct cdm_err *err)
{
	size_t mk, kn, mn;
	*o = (struct operands){0};
	if (cdm_mul_size(m, k, &mk) || cdm_mul_size(k, n, &kn) || cdm_mul_size(m, n, &mn))
		return cdm_fail(err, CDM_ENOMEM, "bench gemm %zux%zux%zu: size overflows", m,
				k, n);
	o->ra = cdm_alloc(mk, sizeof *o->ra, err);
	o->rb = o->ra ? cdm_alloc(kn, sizeof *o->rb, err) : NULL;
	o->rc = o->rb ? cdm_alloc(mn, sizeof *o->rc, err) : NULL;
	o->fa = o->rc ? cdm_alloc(mk, sizeof *o->fa, err) : NULL;
	o->fb = o->fa ? cdm_alloc(kn, sizeof *o->fb, err) : NULL;
	o->fc = o->fb ? cdm_alloc(mn, sizeof *o->fc, err) : NULL;
	if (!o->fc) {
		operands_free(o);
		return cdm_err_prefix(err, "bench gemm %zux%zux%zu: ", m, k, n);
	}
	uint64_t s = 0x67656d6dULL;
	for (size_t i = 0; i < mk; i++) {
		o->ra[i] = mix(&s);
		o->fa[i] = (float)((int64_t)o->ra[i] >> 40) * 0x1p-20f;
	}
	for (size_t i = 0; i < kn; i++) {
		o->rb[i] = mix(&s);
		o->fb[i] = (float)((int64_t)o->rb[i] >> 40) * 0x1p-20f;
	}
	return 0;
}

enum kernel { RING, F32 };

static void run_once(enum kernel which, const struct operands *o, size_t m, size_t k,
		     size_t n)
{
	if (which == RING)
		cdm_ring_gemm(o->rc, o->ra, o->rb, m, k, n, 0);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k,
			    1.0f, o->fa, (int)k, o->fb, (int)n, 0.0f, o->fc, (int)n);
}

static double time_once(enum kernel which, const struct operands *o, size_t m, size_t k,
			size_t n)
{
	double t0 = cdm_now();
	run_once(which, o, m, k, n);
	return cdm_now() - t0;
}

/* Medians of `reps` timed runs of the ring kernel and of single-threaded
 * sgemm, after one warm-up run of each. The runs alternate so that both see
 * the same machine load (other processes share these cores). */
static void time_pair(const struct operands *o, size_t m, size_t k, size_t n, int reps,
		      double *t_ring, double *t_f32, double *ring_med, double *f32_med)
{
	run_once(RING, o, m, k, n);
	run_once(F32, o, m, k, n);
	for (int r = 0; r < reps; r++) {
		t_ring[r] = time_once(RING, o, m, k, n);
		t_f32[r] = time_once(F32, o, m, k, n);
	}
	*ring_med = median(t_ring, reps);
	*f32_med = median(t_f32, reps);
}

/* Median of `reps` timed runs of one kernel after a warm-up run. */
static double time_kernel(enum kernel which, const struct operands *o, size_t m, size_t k,
			  size_t n, int reps, double *t)
{
	run_once(which, o, m, k, n);
	for (int r = 0; r < reps; r++)
		t[r] = time_once(which, o, m, k, n);
	return median(t, reps);
}

int cdm_bench_gemm(size_t m, size_t k, size_t n, int reps,
		   struct cdm_bench_gemm_result *out, struct cdm_err *err)
{
	if (m == 0 || k == 0 || n == 0)
		return cdm_fail(err, CDM_EINPUT,
				"bench gemm: shape m=%zu k=%zu n=%zu: every dimension must be >= 1",
				m, k, n);
	if (m > BENCH_DIM_MAX || k > BENCH_DIM_MAX || n > BENCH_DIM_MAX)
		return cdm_fail(err, CDM_EINPUT,
				"bench gemm: shape m=%zu k=%zu n=%zu: a dimension exceeds %zu", m,
				k, n, BENCH_DIM_MAX);
	if (reps < 1 || reps > BENCH_REPS_MAX)
		return cdm_fail(err, CDM_EINPUT, "bench gemm: reps %d: must be 1..%d", reps,
				BENCH_REPS_MAX);

	struct operands o;
	CDM_TRY(operands_new(&o, m, k, n, err));
	double *t = cdm_alloc(2 * (size_t)reps, sizeof *t, err);
	if (!t) {
		operands_free(&o);
		return cdm_err_prefix(err, "bench gemm: ");
	}

	struct cdm_bench_gemm_result r = {.m = m, .k = k, .n = n, .reps = reps};
	int threads = openblas_get_num_threads();
	r.f32_threads = threads;
	openblas_set_num_threads(1);
	time_pair(&o, m, k, n, reps, t, t + reps, &r.ring_seconds, &r.f32_seconds);
	openblas_set_num_threads(threads);
	r.f32_mt_seconds = threads > 1 ? time_kernel(F32, &o, m, k, n, reps, t) : r.f32_seconds;

	/* A timer tick of 0 would divide by zero on tiny shapes: clamp to 1 ns. */
	double ops = 2.0 * (double)m * (double)k * (double)n;
	if (r.ring_seconds < 1e-9)
		r.ring_seconds = 1e-9;
	if (r.f32_seconds < 1e-9)
		r.f32_seconds = 1e-9;
	if (r.f32_mt_seconds < 1e-9)
		r.f32_mt_seconds = 1e-9;
	r.ring_gops = ops / r.ring_seconds / 1e9;
	r.f32_gflops = ops / r.f32_seconds / 1e9;
	r.f32_mt_gflops = ops / r.f32_mt_seconds / 1e9;
	r.ratio = r.ring_gops / r.f32_gflops;
	*out = r;

	cdm_free(t);
	operands_free(&o);
	return 0;
}
