/*
 * test_mpc_ride: cdm_mpc_ltz_dot_trunc, a fused product-truncation riding
 * along a comparison. The bits must equal [x < 0] exactly (boundaries,
 * extremes of the comparison domain, random values); the product must be
 * the dot product truncated to within 1 LSB (two terms, shifts 20 and 33);
 * the call must take exactly the rounds of cdm_mpc_ltz alone, every party
 * in lockstep; sizes that do not match are refused.
 */
#include "mpc_harness.h"
#include "ring/ring.h"

#include <string.h>

#include "check.h"

#define NX 1000 /* comparisons */
#define NZ 777  /* products (two terms each) */

struct arg {
	const uint64_t *x, *p; /* x [NX]; p: px [2 NZ] then py [2 NZ] */
	int shift, only_ltz;
	uint64_t bits[NX], prod[NZ];
	uint64_t rounds;
	int rc;
	char msg[256];
};

static void party(cdm_mpc *m, void *v)
{
	struct arg *a = v;
	struct cdm_err err = {0};
	cdm_shr x = {0}, px = {0}, py = {0}, b = {0}, z = {0};
	a->rc = cdm_mpc_input(m, 0, a->x, NX, &x, &err);
	if (!a->rc)
		a->rc = cdm_mpc_input(m, 1, a->p, 2 * NZ, &px, &err);
	if (!a->rc)
		a->rc = cdm_mpc_input(m, 2, a->p + 2 * NZ, 2 * NZ, &py, &err);
	struct cdm_net_stats s0, s1;
	cdm_net_get_stats(cdm_mpc_net(m), &s0);
	if (!a->rc)
		a->rc = a->only_ltz ? cdm_mpc_ltz(m, &b, &x, &err)
				    : cdm_mpc_ltz_dot_trunc(m, &b, &x, &z, &px, &py, 2, a->shift, &err);
	cdm_net_get_stats(cdm_mpc_net(m), &s1);
	a->rounds = s1.rounds - s0.rounds;
	if (!a->rc)
		a->rc = cdm_mpc_reveal(m, &b, a->bits, &err);
	if (!a->rc && !a->only_ltz)
		a->rc = cdm_mpc_reveal(m, &z, a->prod, &err);
	snprintf(a->msg, sizeof a->msg, "%s", err.msg);
	cdm_shr_free(&x), cdm_shr_free(&px), cdm_shr_free(&py);
	cdm_shr_free(&b), cdm_shr_free(&z);
}

static uint64_t rng;

static void run(int shift, const uint64_t *x, const uint64_t *p)
{
	struct arg a[3];
	void *args[3];
	for (int i = 0; i < 3; i++) {
		memset(&a[i], 0, sizeof a[i]);
		a[i].x = x, a[i].p = p, a[i].shift = shift;
		args[i] = &a[i];
	}
	CHECK(mpc_run3(party, args) == 0, "mpc_run3");
	for (int i = 0; i < 3; i++)
		CHECK(a[i].rc == 0, "party %d: %s", i, a[i].msg);
	if (a[0].rc)
		return;
	size_t badb = 0, badp = 0;
	for (size_t k = 0; k < NX; k++)
		badb += a[0].bits[k] != (uint64_t)((int64_t)x[k] < 0);
	for (size_t k = 0; k < NZ; k++) {
		/* exact: floor of the 128-bit dot product / 2^shift, +-1 */
		__int128 d = (__int128)(int64_t)p[k] * (int64_t)p[2 * NZ + k] +
			     (__int128)(int64_t)p[NZ + k] * (int64_t)p[3 * NZ + k];
		int64_t want = (int64_t)(d >> shift), got = (int64_t)a[0].prod[k];
		badp += got - want < 0 || got - want > 1;
	}
	CHECK(badb == 0, "shift %d: %zu wrong comparison bits", shift, badb);
	CHECK(badp == 0, "shift %d: %zu products off by more than 1 LSB", shift, badp);
	for (int i = 0; i < 3; i++)
		CHECK(a[i].bits[0] == a[0].bits[0] && a[i].prod[NZ - 1] == a[0].prod[NZ - 1],
		      "party %d revealed other values", i);
	/* the rounds of ltz alone */
	for (int i = 0; i < 3; i++) {
		a[i].only_ltz = 1;
		args[i] = &a[i];
	}
	uint64_t with[3] = {a[0].rounds, a[1].rounds, a[2].rounds};
	CHECK(mpc_run3(party, args) == 0, "mpc_run3 (ltz alone)");
	for (int i = 0; i < 3; i++)
		CHECK(with[i] == a[i].rounds && with[i] > 0,
		      "party %d: %llu rounds with the product, %llu without", i,
		      (unsigned long long)with[i], (unsigned long long)a[i].rounds);
}

struct bad { int rc; };
static void bad_party(cdm_mpc *m, void *v)
{
	struct bad *b = v;
	struct cdm_err err = {0};
	cdm_shr x = {0}, px = {0}, py = {0}, o = {0}, z = {0};
	cdm_shr_new(&x, 4, &err), cdm_shr_new(&px, 6, &err), cdm_shr_new(&py, 5, &err);
	b->rc = cdm_mpc_ltz_dot_trunc(m, &o, &x, &z, &px, &py, 1, 20, &err); /* 6 vs 5 */
	cdm_shr_free(&x), cdm_shr_free(&px), cdm_shr_free(&py), cdm_shr_free(&o), cdm_shr_free(&z);
}

int main(void)
{
	rng = check_seed();
	static uint64_t x[NX], p[4 * NZ];
	int64_t lim = (int64_t)1 << (CDM_CMP_BITS - 1);
	for (size_t k = 0; k < NX; k++) {
		int64_t v = (int64_t)(check_rand(&rng) % (uint64_t)(2 * lim)) - lim;
		static const int64_t edge[] = {0, -1, 1, -2, 2};
		if (k < 5)
			v = edge[k];
		else if (k == 5)
			v = lim - 1;
		else if (k == 6)
			v = -lim;
		x[k] = (uint64_t)v;
	}
	for (size_t k = 0; k < 4 * NZ; k++) /* |x| < 2^25 each: products < 2^51 */
		p[k] = (uint64_t)((int64_t)(check_rand(&rng) % ((uint64_t)1 << 26)) - ((int64_t)1 << 25));
	run(20, x, p);
	run(33, x, p);
	struct bad b[3];
	void *args[3] = {&b[0], &b[1], &b[2]};
	CHECK(mpc_run3(bad_party, args) == 0, "mpc_run3 (bad)");
	for (int i = 0; i < 3; i++)
		CHECK(b[i].rc == CDM_EINPUT, "party %d: mismatched sizes give %d", i, b[i].rc);
	return check_done();
}
