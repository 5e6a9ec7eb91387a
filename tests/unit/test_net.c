/* lib/net: in-process mode (three threads over socketpairs): framing,
 * random sizes, counters, bad frames, closed peers, timeouts; round-trip
 * latency is printed. */
#define _GNU_SOURCE
#include "../../lib/net/net.h"
#include "check.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static uint64_t seed0;

/* ---- helpers ---------------------------------------------------------------- */

typedef void *(*party_fn)(void *);
struct party {
	cdm_net *net;
	int id;
	int rc;               /* result of the interesting call */
	struct cdm_err err;
	uint64_t expect_sent, expect_msgs, expect_rounds, expect_recv;
	int bad_bytes;
	double seconds;
};

/* Run fn in three threads on fresh local endpoints. */
static void run3(party_fn fn, struct party pt[3])
{
	cdm_net *net[3];
	struct cdm_err err = {0};
	int rc = cdm_net_local(net, &err);
	CHECK(rc == 0, "cdm_net_local: %s", err.msg);
	if (rc)
		return;
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		memset(&pt[i], 0, sizeof pt[i]);
		pt[i].net = net[i];
		pt[i].id = i;
		CHECK(cdm_net_id(net[i]) == i, "endpoint %d has id %d", i, cdm_net_id(net[i]));
		pthread_create(&th[i], NULL, fn, &pt[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 3; i++)
		cdm_net_free(pt[i].net);
}

/* Length of the message src -> dst in round r: often 0, sometimes large. */
static size_t msg_len(int r, int src, int dst)
{
	uint64_t st = seed0 ^ ((uint64_t)r * 9 + (uint64_t)src * 3 + (uint64_t)dst);
	uint64_t v = check_rand(&st);
	if (r % 10 == 5)
		return 0; /* a round in which nobody talks */
	switch (v % 8) {
	case 0: return 0;
	case 1: return 1;
	case 2: return 8;
	case 7: return (size_t)(v >> 8) % (3 << 20); /* up to 3 MB */
	default: return (size_t)(v >> 8) % 5000;
	}
}

static void fill(uint8_t *buf, size_t n, int r, int src, int dst)
{
	uint64_t st = ((uint64_t)r << 8) ^ ((uint64_t)src << 4) ^ (uint64_t)dst ^ 0xabcdef;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = check_rand(&st);
		memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* ---- 1. random sizes, contents and exact counters ------------------------------ */

enum { ROUNDS = 300, MAXLEN = 3 << 20 };

static void *random_party(void *arg)
{
	struct party *pt = arg;
	uint8_t *sbuf[3], *rbuf[3], *want = malloc(MAXLEN);
	for (int p = 0; p < 3; p++) {
		sbuf[p] = malloc(MAXLEN);
		rbuf[p] = malloc(MAXLEN);
	}
	for (int r = 0; r < ROUNDS && pt->rc == 0; r++) {
		struct cdm_xfer x = {0};
		int any = 0;
		for (int p = 0; p < 3; p++) {
			if (p == pt->id)
				continue;
			x.send_len[p] = msg_len(r, pt->id, p);
			x.recv_len[p] = msg_len(r, p, pt->id);
			fill(sbuf[p], x.send_len[p], r, pt->id, p);
			x.send[p] = sbuf[p];
			x.recv[p] = rbuf[p];
			if (x.send_len[p]) {
				pt->expect_sent += 32 + x.send_len[p];
				pt->expect_msgs++;
			}
			if (x.recv_len[p])
				pt->expect_recv += 32 + x.recv_len[p];
			any |= x.send_len[p] || x.recv_len[p];
		}
		/* The own slot must be ignored even when it looks like a message. */
		x.send_len[pt->id] = 123;
		x.recv_len[pt->id] = 456;
		pt->expect_rounds += any;
		pt->rc = cdm_net_round(pt->net, &x, &pt->err);
		for (int p = 0; p < 3 && pt->rc == 0; p++) {
			if (p == pt->id)
				continue;
			fill(want, x.recv_len[p], r, p, pt->id);
			pt->bad_bytes += memcmp(want, rbuf[p], x.recv_len[p]) != 0;
		}
	}
	for (int p = 0; p < 3; p++) {
		free(sbuf[p]);
		free(rbuf[p]);
	}
	free(want);
	return NULL;
}

/* Counters are checked inside the thread (the context dies with run3). */
static void *counter_party(void *arg)
{
	struct party *pt = arg;
	random_party(arg);
	struct cdm_net_stats s;
	cdm_net_get_stats(pt->net, &s);
	CHECK(s.bytes_sent == pt->expect_sent, "party %d: bytes_sent %llu, expected %llu", pt->id,
	      (unsigned long long)s.bytes_sent, (unsigned long long)pt->expect_sent);
	CHECK(s.bytes_recv == pt->expect_recv, "party %d: bytes_recv %llu, expected %llu", pt->id,
	      (unsigned long long)s.bytes_recv, (unsigned long long)pt->expect_recv);
	CHECK(s.messages_sent == pt->expect_msgs, "party %d: messages_sent %llu, expected %llu",
	      pt->id, (unsigned long long)s.messages_sent, (unsigned long long)pt->expect_msgs);
	CHECK(s.rounds == pt->expect_rounds, "party %d: rounds %llu, expected %llu", pt->id,
	      (unsigned long long)s.rounds, (unsigned long long)pt->expect_rounds);
	CHECK(pt->expect_rounds > ROUNDS / 2 && pt->expect_rounds < ROUNDS,
	      "the test has both empty and busy rounds (%llu)", (unsigned long long)pt->expect_rounds);
	return NULL;
}

static void test_counters(void)
{
	struct party pt[3];
	run3(counter_party, pt);
	for (int i = 0; i < 3; i++)
		CHECK(pt[i].rc == 0 && pt[i].bad_bytes == 0, "party %d: %s", i, pt[i].err.msg);
}

/* ---- 2. pass: the reshare shape, and the round-trip latency ---------------------- */

enum { PASSES = 20000 };

static void *pass_party(void *arg)
{
	struct party *pt = arg;
	uint64_t out, in;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int r = 0; r < PASSES && pt->rc == 0; r++) {
		out = (uint64_t)r * 3 + (uint64_t)pt->id;
		pt->rc = cdm_net_pass(pt->net, &out, &in, sizeof out, &pt->err);
		uint64_t want = (uint64_t)r * 3 + (uint64_t)((pt->id + 2) % 3);
		pt->bad_bytes += pt->rc == 0 && in != want;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pt->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
	struct cdm_net_stats s;
	cdm_net_get_stats(pt->net, &s);
	CHECK(s.rounds == PASSES && s.messages_sent == PASSES && s.bytes_sent == PASSES * 40ull,
	      "party %d: pass counters %llu rounds %llu msgs %llu bytes", pt->id,
	      (unsigned long long)s.rounds, (unsigned long long)s.messages_sent,
	      (unsigned long long)s.bytes_sent);
	return NULL;
}

static void test_pass(void)
{
	struct party pt[3];
	run3(pass_party, pt);
	for (int i = 0; i < 3; i++) {
		CHECK(pt[i].rc == 0, "party %d: pass: %s", i, pt[i].err.msg);
		CHECK(pt[i].bad_bytes == 0, "party %d: %d passes carried the wrong value", i,
		      pt[i].bad_bytes);
	}
	fprintf(stderr, "pass of 8 bytes between 3 threads: %.1f us per round\n",
		pt[0].seconds / PASSES * 1e6);
}

/* ---- 3. large messages both ways at once (no deadlock) ---------------------------- */

enum { BIG = 64 << 20 };

static void *big_party(void *arg)
{
	struct party *pt = arg;
	struct cdm_xfer x = {0};
	for (int p = 0; p < 3; p++) {
		if (p == pt->id)
			continue;
		uint8_t *s = malloc(BIG);
		fill(s, BIG, 7, pt->id, p);
		x.send[p] = s;
		x.send_len[p] = BIG;
		x.recv[p] = malloc(BIG);
		x.recv_len[p] = BIG;
	}
	pt->rc = cdm_net_round(pt->net, &x, &pt->err);
	uint8_t *want = malloc(BIG);
	for (int p = 0; p < 3; p++) {
		if (p == pt->id)
			continue;
		fill(want, BIG, 7, p, pt->id);
		pt->bad_bytes += memcmp(want, x.recv[p], BIG) != 0;
		free((void *)x.send[p]);
		free(x.recv[p]);
	}
	free(want);
	return NULL;
}

static void test_big(void)
{
	struct party pt[3];
	run3(big_party, pt);
	for (int i = 0; i < 3; i++)
		CHECK(pt[i].rc == 0 && pt[i].bad_bytes == 0, "party %d: 64 MB each way: %s (%d bad)", i,
		      pt[i].err.msg, pt[i].bad_bytes);
}

/* ---- 4. bad frames ------------------------------------------------------------------ */

/* Party 1 forges a frame header for party 0; party 2 idles. */
static int forge_kind;
static void put64le(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void *forge_party(void *arg)
{
	struct party *pt = arg;
	cdm_net_set_timeout(pt->net, 3000);
	uint8_t buf[32 + 64] = {0}, in[64];
	if (pt->id == 1) {
		memcpy(buf, "CDM1", 4);
		put64le(buf + 8, cdm_net_session(pt->net));
		put64le(buf + 16, 0);
		put64le(buf + 24, 64);
		switch (forge_kind) {
		case 0: memcpy(buf, "GET ", 4); break;               /* garbage */
		case 1: put64le(buf + 8, cdm_net_session(pt->net) ^ 1); break; /* session */
		case 2: put64le(buf + 16, 5); break;                 /* sequence */
		case 3: put64le(buf + 24, 32); break;                /* length */
		case 4: buf[4] = 9; break;                            /* flags */
		}
		pt->rc = cdm_net_send_raw(pt->net, 0, buf, sizeof buf, &pt->err);
	} else if (pt->id == 0) {
		struct cdm_xfer x = {0};
		x.recv[1] = in;
		x.recv_len[1] = sizeof in;
		pt->rc = cdm_net_round(pt->net, &x, &pt->err);
	}
	return NULL;
}

static void test_bad_frames(void)
{
	const char *want[] = {
		"peer 1: frame 0: bad magic 0x20544547 (not a cipherdm frame)",
		"peer 1: frame 0: session 0x",
		"peer 1: frame 0: sequence number 5, expected 0",
		"peer 1: frame 0: length 32, expected 64",
		"peer 1: frame 0: flags 0x9, expected 0x0",
	};
	for (forge_kind = 0; forge_kind < 5; forge_kind++) {
		struct party pt[3];
		run3(forge_party, pt);
		CHECK(pt[1].rc == 0, "forger: %s", pt[1].err.msg);
		CHECK(pt[0].rc == CDM_EPROTO, "bad frame %d: rc %d (%s)", forge_kind, pt[0].rc,
		      pt[0].err.msg);
		CHECK(strncmp(pt[0].err.msg, want[forge_kind], strlen(want[forge_kind])) == 0,
		      "bad frame %d: message '%s', expected '%s'", forge_kind, pt[0].err.msg,
		      want[forge_kind]);
	}
}

/* ---- 5. closed peer, short frame, timeout ----------------------------------------- */

static int close_kind;

static void *close_party(void *arg)
{
	struct party *pt = arg;
	cdm_net_set_timeout(pt->net, close_kind == 2 ? 300 : 5000);
	uint8_t buf[32 + 100] = {0}, in[100];
	if (pt->id == 2) {
		if (close_kind == 1) { /* a valid header, then only 10 of 100 bytes */
			memcpy(buf, "CDM1", 4);
			put64le(buf + 8, cdm_net_session(pt->net));
			put64le(buf + 24, 100);
			pt->rc = cdm_net_send_raw(pt->net, 0, buf, 42, &pt->err);
		}
		if (close_kind != 2) {
			cdm_net_free(pt->net);
			pt->net = NULL;
		}
	} else if (pt->id == 0) {
		struct cdm_xfer x = {0};
		x.recv[2] = in;
		x.recv_len[2] = sizeof in;
		pt->rc = cdm_net_round(pt->net, &x, &pt->err);
		if (close_kind == 0) { /* sending to a dead peer: an error, not SIGPIPE */
			static uint8_t big[1 << 20];
			struct cdm_xfer y = {0};
			y.send[2] = big;
			y.send_len[2] = sizeof big;
			struct cdm_err e2 = {0};
			int rc2 = 0;
			for (int k = 0; k < 20 && rc2 == 0; k++)
				rc2 = cdm_net_round(pt->net, &y, &e2);
			CHECK(rc2 == CDM_ENET && strcmp(e2.msg, "peer 2 closed the connection") == 0,
			      "send to a closed peer: rc %d '%s'", rc2, e2.msg);
		}
	}
	return NULL;
}

static void test_close(void)
{
	const char *want[] = {
		"peer 2 closed the connection",
		"peer 2 closed the connection (frame 0 cut short after 42 of 132 bytes)",
		"peer 2: no data for 0.3 s (timeout)",
	};
	for (close_kind = 0; close_kind < 3; close_kind++) {
		struct party pt[3];
		double t0 = cdm_now();
		run3(close_party, pt);
		double dt = cdm_now() - t0;
		CHECK(pt[0].rc == CDM_ENET, "close %d: rc %d (%s)", close_kind, pt[0].rc, pt[0].err.msg);
		CHECK(strcmp(pt[0].err.msg, want[close_kind]) == 0, "close %d: '%s', expected '%s'",
		      close_kind, pt[0].err.msg, want[close_kind]);
		if (close_kind == 2)
			CHECK(dt > 0.29 && dt < 2.0, "timeout after %.2f s, expected 0.3 s", dt);
	}
}

/* ---- 6. bad arguments -------------------------------------------------------------- */

static void test_args(void)
{
	cdm_net *net[3];
	struct cdm_err err = {0};
	CHECK(cdm_net_local(net, &err) == 0, "local: %s", err.msg);
	struct cdm_xfer x = {0};
	x.send_len[1] = 8;
	CHECK(cdm_net_round(net[0], &x, &err) == CDM_EINTERNAL, "NULL send buffer refused");
	CHECK(strstr(err.msg, "NULL buffer for peer 1") != NULL, "message: %s", err.msg);
	struct cdm_xfer none = {0};
	struct cdm_net_stats s;
	CHECK(cdm_net_round(net[0], &none, &err) == 0, "an empty round is a no-op");
	cdm_net_get_stats(net[0], &s);
	CHECK(s.rounds == 0 && s.bytes_sent == 0, "an empty round is not counted");
	CHECK(cdm_net_session(net[0]) == cdm_net_session(net[2]) && cdm_net_session(net[0]) != 0,
	      "local endpoints share a nonzero session");
	CHECK(cdm_net_warning(net[0]) == NULL, "no warning in local mode");
	for (int i = 0; i < 3; i++)
		cdm_net_free(net[i]);
	cdm_net_free(NULL);
}

int main(void)
{
	seed0 = check_seed();
	test_args();
	test_counters();
	test_pass();
	test_big();
	test_bad_frames();
	test_close();
	return check_done();
}
