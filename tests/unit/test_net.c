/* lib/net: in-process mode (three threads over socketpairs): framing,
 * random sizes, counters, bad frames, closed peers, timeouts; round-trip
 * latency is printed. */
#define _GNU_SOURCE
#include "../../lib/net/net.h"
#include "check.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ==== TCP between three processes ================================================= */

/* Results of the children, in shared memory. */
struct result {
	int rc;
	int bad;
	uint64_t session;
	double seconds;
	char msg[256];
	char warning[200];
};
static struct result *res; /* [3] */
static int port_base;

static int next_ports(void)
{
	port_base = check_free_ports(port_base + 3, 3);
	return port_base;
}

static char host_ip[64] = "127.0.0.1";
static int quiet;

static void set_opts(struct cdm_net_opts *o, int id, int base)
{
	memset(o, 0, sizeof *o);
	o->id = id;
	o->quiet = quiet;
	for (int p = 0; p < 3; p++) {
		o->host[p] = host_ip;
		o->port[p] = base + p;
	}
	o->connect_timeout_ms = 10000;
	o->timeout_ms = 10000;
}

typedef void (*child_fn)(int id, int base, struct result *r);

/* Fork one child per party (delay_ms[i] before it starts) and wait for all;
 * a child that does not finish within limit_s is killed. */
static void fork3(child_fn fn, int base, const int delay_ms[3], int limit_s)
{
	pid_t pid[3];
	memset(res, 0, 3 * sizeof *res);
	for (int i = 0; i < 3; i++) {
		res[i].rc = 99;
		pid[i] = fork();
		if (pid[i] == 0) {
			alarm((unsigned)limit_s);
			if (delay_ms && delay_ms[i])
				usleep((useconds_t)delay_ms[i] * 1000);
			fn(i, base, &res[i]);
			_exit(0);
		}
	}
	for (int i = 0; i < 3; i++) {
		int st;
		waitpid(pid[i], &st, 0);
		if (WIFSIGNALED(st) && res[i].rc == 99)
			snprintf(res[i].msg, sizeof res[i].msg, "child killed by signal %d", WTERMSIG(st));
	}
}

/* Connect, then a few rounds with checked contents. */
static void basic_child(int id, int base, struct result *r)
{
	struct cdm_net_opts o;
	cdm_net *net;
	struct cdm_err err = {0};
	set_opts(&o, id, base);
	r->rc = cdm_net_connect(&net, &o, &err);
	if (r->rc) {
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
		return;
	}
	r->session = cdm_net_session(net);
	if (cdm_net_warning(net))
		snprintf(r->warning, sizeof r->warning, "%s", cdm_net_warning(net));
	static uint8_t sbuf[3][70000], rbuf[3][70000], want[70000];
	for (int k = 0; k < 50 && r->rc == 0; k++) {
		struct cdm_xfer x = {0};
		for (int p = 0; p < 3; p++) {
			if (p == id)
				continue;
			x.send_len[p] = msg_len(k, id, p) % 70000;
			x.recv_len[p] = msg_len(k, p, id) % 70000;
			fill(sbuf[p], x.send_len[p], k, id, p);
			x.send[p] = sbuf[p];
			x.recv[p] = rbuf[p];
		}
		r->rc = cdm_net_round(net, &x, &err);
		for (int p = 0; p < 3 && r->rc == 0; p++) {
			if (p == id)
				continue;
			fill(want, x.recv_len[p], k, p, id);
			r->bad += memcmp(want, rbuf[p], x.recv_len[p]) != 0;
		}
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < 2000 && r->rc == 0; k++) {
		uint64_t out = (uint64_t)k, in = 0;
		r->rc = cdm_net_pass(net, &out, &in, 8, &err);
		r->bad += r->rc == 0 && in != (uint64_t)k;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->seconds = ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) / 2000;
	if (r->rc)
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
	cdm_net_free(net);
}

static void test_tcp_basic(void)
{
	fork3(basic_child, next_ports(), NULL, 30);
	for (int i = 0; i < 3; i++) {
		CHECK(res[i].rc == 0, "tcp party %d: %s", i, res[i].msg);
		CHECK(res[i].bad == 0, "tcp party %d: %d corrupted messages", i, res[i].bad);
		CHECK(res[i].session == res[0].session && res[i].session != 0,
		      "party %d agrees on the session (%llx vs %llx)", i,
		      (unsigned long long)res[i].session, (unsigned long long)res[0].session);
		CHECK(res[i].warning[0] == 0, "no warning on loopback: %s", res[i].warning);
	}
	fprintf(stderr, "tcp loopback pass of 8 bytes: %.1f us per round\n", res[0].seconds * 1e6);
}

/* Plain TCP over a non-loopback address warns (unless quiet). */
static void test_tcp_warning(void)
{
	struct ifaddrs *ifa, *i;
	char ip[64] = "";
	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i && !ip[0]; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
				struct sockaddr_in *a = (struct sockaddr_in *)i->ifa_addr;
				if ((ntohl(a->sin_addr.s_addr) >> 24) != 127)
					inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
			}
		freeifaddrs(ifa);
	}
	if (!ip[0]) {
		fprintf(stderr, "no non-loopback IPv4 address: warning test skipped\n");
		return;
	}
	snprintf(host_ip, sizeof host_ip, "%s", ip);
	for (quiet = 0; quiet < 2; quiet++) {
		int base = next_ports();
		fork3(basic_child, base, NULL, 30);
		for (int k = 0; k < 3; k++) {
			CHECK(res[k].rc == 0, "tcp over %s, party %d: %s", ip, k, res[k].msg);
			if (quiet)
				CHECK(res[k].warning[0] == 0, "quiet: no warning (%s)", res[k].warning);
			else
				CHECK(strncmp(res[k].warning, "plain TCP to ", 13) == 0 &&
				      strstr(res[k].warning, ip) != NULL &&
				      strstr(res[k].warning, "neither encrypted nor authenticated") != NULL,
				      "party %d warns about plain TCP to %s: '%s'", k, ip, res[k].warning);
		}
	}
	quiet = 0;
	snprintf(host_ip, sizeof host_ip, "127.0.0.1");
}

/* Started in reverse order, 0.4 s apart. */
static void test_tcp_order(void)
{
	int delay[3] = {800, 400, 0};
	fork3(basic_child, next_ports(), delay, 30);
	for (int i = 0; i < 3; i++)
		CHECK(res[i].rc == 0 && res[i].bad == 0, "reverse start, party %d: %s", i, res[i].msg);
}

/* 256 MB in each of the six directions at once. */
enum { HUGE_MSG = 256 << 20 };
static void huge_child(int id, int base, struct result *r)
{
	struct cdm_net_opts o;
	cdm_net *net;
	struct cdm_err err = {0};
	set_opts(&o, id, base);
	r->rc = cdm_net_connect(&net, &o, &err);
	if (r->rc) {
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
		return;
	}
	uint8_t *sbuf = malloc(HUGE_MSG), *want = malloc(HUGE_MSG);
	struct cdm_xfer x = {0};
	fill(sbuf, HUGE_MSG, 1, id, 9);
	for (int p = 0; p < 3; p++) {
		if (p == id)
			continue;
		x.send[p] = sbuf;
		x.send_len[p] = HUGE_MSG;
		x.recv[p] = malloc(HUGE_MSG);
		x.recv_len[p] = HUGE_MSG;
	}
	double t0 = cdm_now();
	r->rc = cdm_net_round(net, &x, &err);
	r->seconds = cdm_now() - t0;
	for (int p = 0; p < 3; p++) {
		if (p == id)
			continue;
		if (r->rc == 0) {
			fill(want, HUGE_MSG, 1, p, 9);
			r->bad += memcmp(want, x.recv[p], HUGE_MSG) != 0;
		}
		free(x.recv[p]);
	}
	struct cdm_net_stats s;
	cdm_net_get_stats(net, &s);
	if (s.bytes_sent != 2 * (HUGE_MSG + 32ull) || s.bytes_recv != 2 * (HUGE_MSG + 32ull) ||
	    s.rounds != 1 || s.messages_sent != 2)
		r->bad += 1000;
	if (r->rc)
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
	free(sbuf);
	free(want);
	cdm_net_free(net);
}

static void test_tcp_huge(void)
{
	fork3(huge_child, next_ports(), NULL, 50);
	for (int i = 0; i < 3; i++)
		CHECK(res[i].rc == 0 && res[i].bad == 0, "256 MB each way, party %d: %s (bad %d)", i,
		      res[i].msg, res[i].bad);
	fprintf(stderr, "256 MB in all six directions at once: %.2f s (%.0f MB/s per party out)\n",
		res[0].seconds, 512 / res[0].seconds);
}

/* Party 2 dies (SIGKILL) or hangs (SIGSTOP) after connecting. */
static int die_signal;
static void die_child(int id, int base, struct result *r)
{
	struct cdm_net_opts o;
	cdm_net *net;
	struct cdm_err err = {0};
	set_opts(&o, id, base);
	o.timeout_ms = 1000;
	r->rc = cdm_net_connect(&net, &o, &err);
	if (r->rc == 0 && id == 2) {
		if (die_signal == SIGSTOP)
			r->rc = 0;
		raise(die_signal);
		pause();
	}
	if (r->rc == 0) {
		uint64_t out[3] = {1, 2, 3}, in[3];
		struct cdm_xfer x = {0};
		for (int p = 0; p < 3; p++)
			if (p != id) {
				x.send[p] = &out[p];
				x.send_len[p] = 8;
				x.recv[p] = &in[p];
				x.recv_len[p] = 8;
			}
		double t0 = cdm_now();
		r->rc = cdm_net_round(net, &x, &err);
		r->seconds = cdm_now() - t0;
		cdm_net_free(net);
	}
	snprintf(r->msg, sizeof r->msg, "%s", err.msg);
}

static void test_tcp_death(void)
{
	const char *want[2] = {"peer 2 closed the connection", "peer 2: no data for 1 s (timeout)"};
	int sigs[2] = {SIGKILL, SIGSTOP};
	for (int k = 0; k < 2; k++) {
		die_signal = sigs[k];
		int base = next_ports();
		pid_t pid[3];
		memset(res, 0, 3 * sizeof *res);
		for (int i = 0; i < 3; i++)
			if ((pid[i] = fork()) == 0) {
				alarm(20);
				die_child(i, base, &res[i]);
				_exit(0);
			}
		for (int i = 0; i < 2; i++)
			waitpid(pid[i], NULL, 0);
		kill(pid[2], SIGKILL);
		waitpid(pid[2], NULL, 0);
		for (int i = 0; i < 2; i++) {
			CHECK(res[i].rc == CDM_ENET, "%s: party %d rc %d (%s)", strsignal(sigs[k]), i,
			      res[i].rc, res[i].msg);
			CHECK(strcmp(res[i].msg, want[k]) == 0, "%s: party %d says '%s', expected '%s'",
			      strsignal(sigs[k]), i, res[i].msg, want[k]);
			CHECK(res[i].seconds < (k ? 1.9 : 0.5), "%s: party %d noticed after %.2f s",
			      strsignal(sigs[k]), i, res[i].seconds);
		}
	}
}

/* A fake party 0 that sends a bad hello (or garbage). */
static int fake_kind;
static void fake_child(int id, int base, struct result *r)
{
	if (id != 0) {
		struct cdm_net_opts o;
		cdm_net *net = NULL;
		struct cdm_err err = {0};
		set_opts(&o, id, base);
		o.connect_timeout_ms = 3000;
		if (fake_kind == 2)
			o.session = 0x1234 + (uint64_t)id; /* parties disagree */
		r->rc = cdm_net_connect(&net, &o, &err);
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
		cdm_net_free(net);
		return;
	}
	if (fake_kind == 2) { /* a real party 0 with a third session */
		struct cdm_net_opts o;
		cdm_net *net = NULL;
		struct cdm_err err = {0};
		set_opts(&o, id, base);
		o.connect_timeout_ms = 3000;
		o.session = 0x1234;
		r->rc = cdm_net_connect(&net, &o, &err);
		snprintf(r->msg, sizeof r->msg, "%s", err.msg);
		cdm_net_free(net);
		return;
	}
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)base)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4)) {
		snprintf(r->msg, sizeof r->msg, "fake: cannot listen");
		return;
	}
	uint8_t h[64] = {0};
	if (fake_kind == 0) {
		memcpy(h, "CDM1", 4);
		h[4] = 1;     /* hello flag */
		h[24] = 32;   /* length */
		h[32] = 1;    /* version */
		h[36] = 2;    /* "I am party 2" */
	} else {
		const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
		memcpy(h, get, strlen(get));
	}
	/* Accept both real parties before answering, so neither gives up on
	 * the other before it has seen this fake's reply. */
	int fd[2];
	for (int k = 0; k < 2; k++)
		fd[k] = accept(lfd, NULL, NULL);
	for (int k = 0; k < 2; k++)
		if (fd[k] >= 0 && write(fd[k], h, sizeof h) < 0)
			r->bad++;
	usleep(500000);
	for (int k = 0; k < 2; k++)
		if (fd[k] >= 0)
			close(fd[k]);
	r->rc = 0;
	close(lfd);
}

static void test_tcp_fake(void)
{
	for (fake_kind = 0; fake_kind < 3; fake_kind++) {
		int base = next_ports();
		fork3(fake_child, base, NULL, 20);
		char want[200];
		if (fake_kind == 0)
			snprintf(want, sizeof want, "party 1: peer on port %d says it is party 2, expected party 0",
				 base);
		else if (fake_kind == 1)
			snprintf(want, sizeof want, "party 1: peer 0: not a cipherdm party (bad hello magic 0x20544547");
		else
			snprintf(want, sizeof want, "party 1: party 0 asks for session 0x0000000000001234, this party for 0x0000000000001235");
		CHECK(res[1].rc == CDM_EPROTO, "fake %d: rc %d (%s)", fake_kind, res[1].rc, res[1].msg);
		CHECK(strncmp(res[1].msg, want, strlen(want)) == 0, "fake %d: '%s', expected '%s'",
		      fake_kind, res[1].msg, want);
	}
}

static void test_tcp_errors(void)
{
	struct cdm_net_opts o;
	cdm_net *net = (cdm_net *)1;
	struct cdm_err err = {0};
	char want[200];
	int base = next_ports();

	/* port in use */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)base)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0, "test socket");
	set_opts(&o, 0, base);
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_ENET && net == NULL, "port in use: %s", err.msg);
	snprintf(want, sizeof want, "party 0: cannot listen on 127.0.0.1:%d: Address already in use", base);
	CHECK(strcmp(err.msg, want) == 0, "port in use: '%s'", err.msg);
	close(lfd);

	/* nobody answers */
	set_opts(&o, 1, base);
	o.connect_timeout_ms = 600;
	double t0 = cdm_now();
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_ENET, "nobody there: %s", err.msg);
	snprintf(want, sizeof want,
		 "party 1: cannot connect to party 0 at 127.0.0.1:%d: Connection refused (gave up after 1 s)",
		 base);
	CHECK(strcmp(err.msg, want) == 0, "nobody there: '%s'", err.msg);
	CHECK(cdm_now() - t0 < 1.5, "gave up after %.2f s", cdm_now() - t0);

	/* nobody dials in */
	set_opts(&o, 0, base);
	o.connect_timeout_ms = 300;
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_ENET, "nobody dials: %s", err.msg);
	snprintf(want, sizeof want,
		 "party 0: timed out after 0 s waiting for parties 1 and 2 to connect to port %d", base);
	CHECK(strcmp(err.msg, want) == 0, "nobody dials: '%s'", err.msg);

	/* bad host, bad options */
	set_opts(&o, 1, base);
	o.host[0] = "no-such-host.invalid";
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_EINPUT, "bad host: %s", err.msg);
	CHECK(strncmp(err.msg, "party 1: cannot resolve host 'no-such-host.invalid': ", 52) == 0,
	      "bad host: '%s'", err.msg);
	set_opts(&o, 3, base);
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_EINPUT &&
	      strcmp(err.msg, "party id 3: must be 0, 1 or 2") == 0, "bad id: '%s'", err.msg);
	set_opts(&o, 0, base);
	o.port[2] = 70000;
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_EINPUT &&
	      strcmp(err.msg, "port of party 2: 70000 is not a TCP port (1-65535)") == 0,
	      "bad port: '%s'", err.msg);
	set_opts(&o, 0, base);
	o.tls_cert = "x.pem";
	CHECK(cdm_net_connect(&net, &o, &err) == CDM_EINPUT &&
	      strcmp(err.msg, "TLS needs a certificate, a key and a CA (key missing)") == 0,
	      "partial TLS: '%s'", err.msg);
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

	res = mmap(NULL, 3 * sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	port_base = 20000 + (int)(getpid() % 1500) * 20;
	test_tcp_errors();
	test_tcp_basic();
	test_tcp_order();
	test_tcp_warning();
	test_tcp_fake();
	test_tcp_death();
	test_tcp_huge();
	return check_done();
}
