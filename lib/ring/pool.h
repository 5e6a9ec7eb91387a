/*
 * ring/pool: the process-wide worker pool behind `--threads N`.
 *
 * Owns: N-1 worker threads, created once (cdm_ring_threads_set) and reused
 * by every large ring GEMM (lib/ring/gemm.c) and PRG expansion (lib/prg);
 * a static partition of one task into N parts, the caller running part 0.
 * Does not own: deciding what is "large" (each caller has its size
 * threshold so that small calls never pay a thread wake-up), or any
 * randomness or ring arithmetic.
 *
 * Determinism: callers split work into disjoint output ranges that do not
 * depend on which thread runs them, so results are bit-identical for every
 * N (tests/unit/test_pool.c checks GEMM and PRG for N = 1, 2, 3).
 *
 * Thread-safety: cdm_ring_parallel may be called from any thread. One task
 * runs on the pool at a time; a call that finds the pool busy (another
 * thread's task, or a call from inside a task) runs its task alone as
 * fn(arg, 0, 1) in the calling thread, which gives the same result.
 * cdm_ring_threads_set must not race with cdm_ring_parallel (call it at
 * start-up and shutdown).
 */
#ifndef CDM_RING_POOL_H
#define CDM_RING_POOL_H

#include "../base/base.h"

#define CDM_THREADS_MAX 64

/* One part of a task: handle the part-th of nparts pieces of the work. */
typedef void (*cdm_ring_task)(void *arg, int part, int nparts);

/* Use n threads in all (n - 1 workers plus the caller). n = 1 stops and
 * joins the workers. Fails with CDM_EINPUT for n outside 1..CDM_THREADS_MAX
 * and CDM_EINTERNAL when a thread cannot be created (the pool is then back
 * to one thread). */
int cdm_ring_threads_set(int n, struct cdm_err *err);

/* Threads in use (1 when no pool was started). */
int cdm_ring_threads(void);

/* Run fn(arg, i, N) for i = 0..N-1, in parallel, and return when all are
 * done; N = cdm_ring_threads(), or 1 when the pool is busy. */
void cdm_ring_parallel(cdm_ring_task fn, void *arg);

/* Part `part` of `nparts` of the range [0, n), in units of `align`
 * elements (the last part takes the remainder): sets *lo and *hi. */
void cdm_ring_part(size_t n, size_t align, int part, int nparts, size_t *lo, size_t *hi);

#endif
