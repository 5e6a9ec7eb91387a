/*
 * check.h: the unit-test harness. Numbered checks, a printed seed that can
 * be overridden with CDM_TEST_SEED, and a summary line.
 *   CHECK(cond, "fmt", ...)  -- counts and reports a failure, goes on
 *   CHECK_NEAR(a, b, tol, "what")
 *   return check_done();     -- exit status of the test program
 */
#ifndef CDM_TEST_CHECK_H
#define CDM_TEST_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int check_count, check_failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		check_count++;                                                  \
		if (!(cond)) {                                                  \
			check_failures++;                                       \
			fprintf(stderr, "%s:%d: check %d failed: ", __FILE__,   \
				__LINE__, check_count);                         \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

#define CHECK_NEAR(a, b, tol, what)                                             \
	CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: %.9g vs %.9g (tol %g)", \
	      (what), (double)(a), (double)(b), (double)(tol))

static inline uint64_t check_seed(void)
{
	const char *s = getenv("CDM_TEST_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : 20261125;
	fprintf(stderr, "seed %llu (set CDM_TEST_SEED to change)\n", (unsigned long long)seed);
	return seed;
}

/* splitmix64: a small deterministic generator for test inputs. */
static inline uint64_t check_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline double check_uniform(uint64_t *state, double lo, double hi)
{
	return lo + (hi - lo) * ((check_rand(state) >> 11) * 0x1.0p-53);
}

static inline int check_done(void)
{
	fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
	return check_failures ? 1 : 0;
}

/* The first base >= `from` such that ports base..base+n-1 can all be bound
 * on 127.0.0.1 right now (no SO_REUSEADDR: a port in TIME_WAIT counts as
 * taken). Tests that listen on fixed ports use it so that a busy machine
 * (other test runs, lingering connections) does not make them fail. */
static inline int check_free_ports(int from, int n)
{
	for (int base = from; base + n < 65000; base += n) {
		int ok = 1;
		for (int p = 0; ok && p < n; p++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a;
			memset(&a, 0, sizeof a);
			a.sin_family = AF_INET;
			a.sin_port = htons((uint16_t)(base + p));
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
			if (fd >= 0)
				close(fd);
		}
		if (ok)
			return base;
	}
	return from;
}

#endif
