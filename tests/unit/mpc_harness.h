/*
 * mpc_harness.h: run a function as the three parties of an MPC session, in
 * three threads of this process over cdm_net_local (real socketpairs, the
 * same round code as TCP).
 *
 *   static void party(cdm_mpc *m, void *arg) { ... }
 *   void *args[3] = {&a0, &a1, &a2};
 *   if (mpc_run3(party, args) < 0) ...      // setup failed (message printed)
 *   mpc_h_sent[i], mpc_h_rounds[i]          // cost of party(): bytes, rounds
 *
 * The session seed is fixed (mpc_h_seed, test mode) so runs are
 * reproducible; set mpc_h_random = 1 for OS randomness. Party functions run
 * concurrently: they must not call CHECK (its counters are not atomic) --
 * store results in their argument and check them after mpc_run3 returns.
 */
#ifndef CDM_TEST_MPC_HARNESS_H
#define CDM_TEST_MPC_HARNESS_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../../lib/mpc/mpc.h"

typedef void (*mpc_party_fn)(cdm_mpc *m, void *arg);

static uint8_t mpc_h_seed[CDM_SEED_BYTES] = {0x63, 0x64, 0x6d, 0x2d, 0x74, 0x65, 0x73, 0x74};
static int mpc_h_random;                 /* 1: random session seeds */
static int mpc_h_frac;                   /* fraction bits; 0 = default */
static uint64_t mpc_h_sent[CDM_PARTIES]; /* bytes party i sent during fn */
static uint64_t mpc_h_recv[CDM_PARTIES];
static uint64_t mpc_h_rounds[CDM_PARTIES];
static double mpc_h_seconds;             /* wall time of the slowest party */

struct mpc_h_thread {
	cdm_net *net;
	mpc_party_fn fn;
	void *arg;
	int rc;
	struct cdm_err err;
	double seconds;
};

static inline void *mpc_h_main(void *p)
{
	struct mpc_h_thread *t = p;
	struct cdm_mpc_opts o = {.frac_bits = mpc_h_frac, .seed = mpc_h_random ? NULL : mpc_h_seed};
	cdm_mpc *m = NULL;
	t->rc = cdm_mpc_new(&m, t->net, &o, &t->err);
	if (t->rc < 0)
		return NULL;
	struct cdm_net_stats s0, s1;
	int id = cdm_net_id(t->net);
	cdm_net_get_stats(t->net, &s0);
	double t0 = cdm_now();
	t->fn(m, t->arg);
	t->seconds = cdm_now() - t0;
	cdm_net_get_stats(t->net, &s1);
	mpc_h_sent[id] = s1.bytes_sent - s0.bytes_sent;
	mpc_h_recv[id] = s1.bytes_recv - s0.bytes_recv;
	mpc_h_rounds[id] = s1.rounds - s0.rounds;
	cdm_mpc_free(m);
	return NULL;
}

/* Run fn(m, args[i]) as party i, i = 0, 1, 2. Returns 0, or -1 when the
 * network or session could not be set up (message on stderr). */
static inline int mpc_run3(mpc_party_fn fn, void *args[CDM_PARTIES])
{
	cdm_net *net[CDM_PARTIES];
	struct cdm_err err = {0};
	if (cdm_net_local(net, &err) < 0) {
		fprintf(stderr, "mpc_run3: %s\n", err.msg);
		return -1;
	}
	struct mpc_h_thread t[CDM_PARTIES];
	pthread_t th[CDM_PARTIES];
	int bad = 0;
	for (int i = 0; i < CDM_PARTIES; i++) {
		memset(&t[i], 0, sizeof t[i]);
		t[i].net = net[i];
		t[i].fn = fn;
		t[i].arg = args[i];
		if (pthread_create(&th[i], NULL, mpc_h_main, &t[i]) != 0) {
			fprintf(stderr, "mpc_run3: cannot start thread %d\n", i);
			return -1; /* leaks on purpose: the test is failing anyway */
		}
	}
	mpc_h_seconds = 0;
	for (int i = 0; i < CDM_PARTIES; i++) {
		pthread_join(th[i], NULL);
		if (t[i].rc < 0) {
			fprintf(stderr, "mpc_run3: party %d: %s\n", i, t[i].err.msg);
			bad = -1;
		}
		if (t[i].seconds > mpc_h_seconds)
			mpc_h_seconds = t[i].seconds;
	}
	for (int i = 0; i < CDM_PARTIES; i++)
		cdm_net_free(net[i]);
	return bad;
}

#endif
