/*
 * The worker pool of `--threads N` (see pool.h).
 *
 * Workers sleep on a condition variable between tasks (no spinning: the
 * target machine is a shared 2-core box where a spinning worker would steal
 * the core a peer party needs). A task is published by bumping `gen`; each
 * worker runs its part and the last one to finish wakes the caller.
 */
#include "pool.h"

#include <pthread.h>
#include <string.h>

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;   /* workers: a new task or stop */
	pthread_cond_t done;   /* caller: pending reached 0 */
	pthread_mutex_t run;   /* held by the caller of the task on the pool */
	pthread_t tid[CDM_THREADS_MAX];
	int nthreads;          /* workers + 1 */
	unsigned long gen;     /* task generation */
	int pending;           /* workers still running the current task */
	int stop;
	cdm_ring_task fn;
	void *arg;
} P = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.run = PTHREAD_MUTEX_INITIALIZER,
	.nthreads = 1,
};

static void *worker(void *p)
{
	int part = (int)(intptr_t)p;
	unsigned long seen = 0;
	pthread_mutex_lock(&P.mu);
	for (;;) {
		while (P.gen == seen && !P.stop)
			pthread_cond_wait(&P.wake, &P.mu);
		if (P.stop)
			break;
		seen = P.gen;
		cdm_ring_task fn = P.fn;
		void *arg = P.arg;
		int nparts = P.nthreads;
		pthread_mutex_unlock(&P.mu);
		fn(arg, part, nparts);
		pthread_mutex_lock(&P.mu);
		if (--P.pending == 0)
			pthread_cond_signal(&P.done);
	}
	pthread_mutex_unlock(&P.mu);
	return NULL;
}

/* Join every worker; the pool is then single-threaded. */
static void pool_stop(void)
{
	int workers = P.nthreads - 1;
	if (workers <= 0)
		return;
	pthread_mutex_lock(&P.mu);
	P.stop = 1;
	pthread_cond_broadcast(&P.wake);
	pthread_mutex_unlock(&P.mu);
	for (int i = 0; i < workers; i++)
		pthread_join(P.tid[i], NULL);
	P.stop = 0;
	P.nthreads = 1;
}

int cdm_ring_threads_set(int n, struct cdm_err *err)
{
	if (n < 1 || n > CDM_THREADS_MAX)
		return cdm_fail(err, CDM_EINPUT, "threads: %d is outside 1..%d", n,
				CDM_THREADS_MAX);
	if (n == P.nthreads)
		return 0;
	pool_stop();
	/* New workers must not mistake an old generation for a task. */
	P.gen = 0;
	for (int i = 1; i < n; i++) {
		int rc = pthread_create(&P.tid[i - 1], NULL, worker, (void *)(intptr_t)i);
		if (rc != 0) {
			P.nthreads = i; /* the workers created so far */
			pool_stop();
			return cdm_fail(err, CDM_EINTERNAL, "threads: cannot start worker %d of %d: %s",
					i, n - 1, strerror(rc));
		}
		P.nthreads = i + 1;
	}
	return 0;
}

int cdm_ring_threads(void)
{
	return P.nthreads;
}

void cdm_ring_parallel(cdm_ring_task fn, void *arg)
{
	if (P.nthreads == 1 || pthread_mutex_trylock(&P.run) != 0) {
		fn(arg, 0, 1);
		return;
	}
	int n = P.nthreads;
	pthread_mutex_lock(&P.mu);
	P.fn = fn;
	P.arg = arg;
	P.pending = n - 1;
	P.gen++;
	pthread_cond_broadcast(&P.wake);
	pthread_mutex_unlock(&P.mu);

	fn(arg, 0, n);

	pthread_mutex_lock(&P.mu);
	while (P.pending > 0)
		pthread_cond_wait(&P.done, &P.mu);
	pthread_mutex_unlock(&P.mu);
	pthread_mutex_unlock(&P.run);
}

void cdm_ring_part(size_t n, size_t align, int part, int nparts, size_t *lo, size_t *hi)
{
	size_t units = (n + align - 1) / align;
	size_t u0 = units * (size_t)part / (size_t)nparts;
	size_t u1 = units * (size_t)(part + 1) / (size_t)nparts;
	*lo = u0 * align < n ? u0 * align : n;
	*hi = u1 * align < n ? u1 * align : n;
}
