/*
 * test_fakepeer: a misbehaving party 0 for the failing-peer tests, and its
 * own unit test.
 *
 *   test_fakepeer                          self-test (run by `make check`)
 *   test_fakepeer serve PORT MODE SECONDS  be a fake party 0 listening on
 *                                          127.0.0.1:PORT for SECONDS, for
 *                                          tests/cli/peers_fake.sh
 *
 * The fake accepts the connections of parties 1 and 2 and then, by MODE:
 *   random   sends random bytes instead of a hello frame
 *   silent   sends nothing (a peer that accepts and stalls)
 *   close    closes each connection at once
 *   stall    sends a valid hello, then nothing
 *   garbage  valid hello, then random bytes in place of frames
 *   session  valid hello, then a frame with a wrong session id
 *   seq      valid hello, then a frame with the right session but seq 5
 *   length   valid hello, then a frame claiming 2^62 payload bytes
 *   short    valid hello, then 20 bytes of a frame header and a close
 *   trickle  valid hello, then a valid frame one byte per second, never
 *            its last byte (a peer that keeps the line busy but never
 *            completes a frame must not extend the timeout)
 *   drip     the hello itself one byte per second, never its last byte
 * (the frame layout and the hello payload are those of lib/net/net_impl.h).
 * The honest parties must fail with CDM_EPROTO or CDM_ENET within their
 * timeout, with a message naming the peer and the problem: the self-test
 * checks that for each mode with two real cdm_net endpoints in threads.
 * The shell has no listening socket (and nc/socat are not guaranteed), so
 * the CLI test uses this binary as its fake peer.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/net/net.h"
#include "check.h"

#define HDR 32
#define MAGIC 0x314d4443u
#define FLAG_HELLO 1u

enum mode { M_RANDOM, M_SILENT, M_CLOSE, M_STALL, M_GARBAGE, M_SESSION, M_SEQ, M_LENGTH,
	    M_SHORT, M_TRICKLE, M_DRIP, M_COUNT };
static const char *mode_names[M_COUNT] = {"random", "silent", "close", "stall", "garbage",
					  "session", "seq", "length", "short", "trickle",
					  "drip"};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

static void frame_hdr(uint8_t h[HDR], uint32_t flags, uint64_t session, uint64_t seq,
		      uint64_t len)
{
	put32(h, MAGIC);
	put32(h + 4, flags);
	put64(h + 8, session);
	put64(h + 16, seq);
	put64(h + 24, len);
}

/* the session id the honest parties derive from the three hello nonces */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* read exactly len bytes before the deadline; -1 on close/timeout */
static int read_all(int fd, void *buf, size_t len, double deadline)
{
	uint8_t *p = buf;
	while (len) {
		int left = (int)((deadline - now_s()) * 1000);
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			return -1;
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void send_random(int fd, size_t len)
{
	uint8_t buf[4096];
	while (len) {
		size_t n = len < sizeof buf ? len : sizeof buf;
		if (getrandom(buf, n, 0) != (ssize_t)n || write_all(fd, buf, n) < 0)
			return;
		len -= n;
	}
}

/* ---- the fake party 0 ------------------------------------------------------------ */

struct fake {
	int lfd;
	enum mode mode;
	double seconds;
	double drip_s; /* trickle/drip: seconds between bytes (0: 1 s) */
	int conns; /* connections accepted */
};

static int listen_port(int port, int *lfd)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 8) < 0) {
		close(fd);
		return -1;
	}
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	*lfd = fd;
	return ntohs(a.sin_port);
}

/* Accept the two honest parties, misbehave by mode, then keep the sockets
 * open (draining what they send) until `seconds` have passed. */
static void *fake_run(void *arg)
{
	struct fake *f = arg;
	double end = now_s() + f->seconds;
	int fd[2] = {-1, -1};
	uint8_t hello[HDR + 32], theirs[2][HDR + 32], fr[HDR + 8] = {0};
	uint64_t nonce0;
	/* trickle/drip: bytes of `slow` still to send, one per second */
	const uint8_t *slow = NULL;
	size_t slow_len = 0, slow_sent = 0;
	double gap = f->drip_s > 0 ? f->drip_s : 1, slow_next = now_s() + gap;
	if (getrandom(&nonce0, sizeof nonce0, 0) != sizeof nonce0)
		nonce0 = 0x1234567;
	frame_hdr(hello, FLAG_HELLO, 0, 0, 32);
	memset(hello + HDR, 0, 32);
	put32(hello + HDR, 1); /* protocol version */
	put32(hello + HDR + 4, 0); /* party 0 */
	put64(hello + HDR + 8, nonce0);
	for (int i = 0; i < 2; i++) {
		int left = (int)((end - now_s()) * 1000);
		struct pollfd pf = {.fd = f->lfd, .events = POLLIN};
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			goto out;
		fd[i] = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd[i] < 0)
			goto out;
		f->conns++;
		switch (f->mode) {
		case M_RANDOM: send_random(fd[i], 1 << 16); break;
		case M_CLOSE: close(fd[i]); fd[i] = -1; break;
		case M_SILENT: break;
		case M_DRIP: break;
		default: write_all(fd[i], hello, sizeof hello); break;
		}
	}
	if (f->mode == M_DRIP)
		slow = hello, slow_len = sizeof hello - 1;
	if (f->mode >= M_GARBAGE && f->mode != M_DRIP) {
		/* the hellos of parties 1 and 2, in either order, give the session */
		uint64_t n[3] = {nonce0, 0, 0};
		for (int i = 0; i < 2; i++) {
			if (read_all(fd[i], theirs[i], sizeof theirs[i], end) < 0)
				goto out;
			uint32_t who = get32(theirs[i] + HDR + 4);
			if (who == 1 || who == 2)
				n[who] = get64(theirs[i] + HDR + 8);
		}
		uint64_t h = 0x636970686572646dULL;
		for (int p = 0; p < 3; p++)
			h = mix64(h ^ n[p]);
		uint64_t session = h ? h : 1;
		if (f->mode == M_TRICKLE)
			slow = fr, slow_len = sizeof fr - 1;
		for (int i = 0; i < 2; i++) {
			switch (f->mode) {
			case M_GARBAGE: send_random(fd[i], 1 << 16); break;
			case M_SESSION: frame_hdr(fr, 0, session ^ 0x5a5a, 0, 8); break;
			case M_SEQ: frame_hdr(fr, 0, session, 5, 8); break;
			case M_LENGTH: frame_hdr(fr, 0, session, 0, (uint64_t)1 << 62); break;
			case M_SHORT: frame_hdr(fr, 0, session, 0, 8); break;
			case M_TRICKLE: frame_hdr(fr, 0, session, 0, 8); break;
			default: break;
			}
			if (f->mode == M_SHORT) {
				write_all(fd[i], fr, 20);
				close(fd[i]);
				fd[i] = -1;
			} else if (f->mode != M_GARBAGE && f->mode != M_TRICKLE) {
				write_all(fd[i], fr, sizeof fr);
			}
		}
	}
	/* drain until the honest parties hang up or time runs out */
	for (;;) {
		struct pollfd pf[2];
		int np = 0;
		for (int i = 0; i < 2; i++)
			if (fd[i] >= 0)
				pf[np].fd = fd[i], pf[np].events = POLLIN, pf[np++].revents = 0;
		int left = (int)((end - now_s()) * 1000);
		if (slow && slow_sent < slow_len) {
			int next = (int)((slow_next - now_s()) * 1000);
			if (next <= 0) {
				for (int i = 0; i < 2; i++)
					if (fd[i] >= 0)
						write_all(fd[i], slow + slow_sent, 1);
				slow_sent++;
				slow_next += gap;
				continue;
			}
			left = next < left ? next : left;
		}
		if (np == 0 || left <= 0)
			break;
		int ready = poll(pf, (nfds_t)np, left);
		if (ready < 0)
			break;
		if (ready == 0)
			continue; /* a trickle byte is due (or time is up: checked above) */
		for (int k = 0; k < np; k++) {
			char buf[4096];
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (recv(pf[k].fd, buf, sizeof buf, 0) > 0)
				continue;
			for (int i = 0; i < 2; i++)
				if (fd[i] == pf[k].fd) {
					close(fd[i]);
					fd[i] = -1;
				}
		}
	}
out:
	for (int i = 0; i < 2; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return NULL;
}

static int serve(int argc, char **argv)
{
	struct fake f = {.mode = M_COUNT};
	int port = argc == 5 ? atoi(argv[2]) : 0;
	for (int m = 0; argc == 5 && m < M_COUNT; m++)
		if (!strcmp(argv[3], mode_names[m]))
			f.mode = (enum mode)m;
	f.seconds = argc == 5 ? atof(argv[4]) : 0;
	if (port <= 0 || port > 65535 || f.mode == M_COUNT || !(f.seconds > 0)) {
		fprintf(stderr, "usage: test_fakepeer serve PORT MODE SECONDS "
				"(MODE: random silent close stall garbage session seq length short "
				"trickle drip)\n");
		return 1;
	}
	if (listen_port(port, &f.lfd) < 0) {
		fprintf(stderr, "test_fakepeer: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		return 1;
	}
	fake_run(&f);
	close(f.lfd);
	return 0;
}

/* ---- self-test: two honest endpoints against the fake --------------------------- */

struct honest {
	int id;
	int port[3];
	int timeout_ms;
	int rc;
	struct cdm_err err;
	double seconds;
};

static void *honest_run(void *arg)
{
	struct honest *h = arg;
	struct cdm_net_opts o = {.id = h->id, .timeout_ms = h->timeout_ms,
				 .connect_timeout_ms = h->timeout_ms, .quiet = 1};
	for (int p = 0; p < 3; p++) {
		o.host[p] = "127.0.0.1";
		o.port[p] = h->port[p];
	}
	double t0 = now_s();
	cdm_net *net = NULL;
	h->rc = cdm_net_connect(&net, &o, &h->err);
	if (h->rc == 0) {
		uint64_t out[3] = {1, 2, 3}, in[3][1];
		struct cdm_xfer x = {0};
		for (int p = 0; p < 3; p++)
			if (p != h->id) {
				x.send[p] = &out[p], x.send_len[p] = 8;
				x.recv[p] = in[p], x.recv_len[p] = 8;
			}
		h->rc = cdm_net_round(net, &x, &h->err);
	}
	h->seconds = now_s() - t0;
	cdm_net_free(net);
	return NULL;
}

/* a port nobody listens on right now (bind to 0, read it, close) */
static int spare_port(void)
{
	int fd, port = listen_port(0, &fd);
	if (port > 0)
		close(fd);
	return port;
}

struct expect {
	enum mode mode;
	const char *pat[3]; /* one of them must appear in some party's message */
};

static void self_test_mode(const struct expect *e)
{
	/* bytes 4x faster than the 1 s timeout: only a deadline on the whole
	 * frame (not on each read) ends the wait */
	struct fake f = {.mode = e->mode, .seconds = 4, .drip_s = 0.25};
	int p0 = listen_port(0, &f.lfd);
	CHECK(p0 > 0, "%s: cannot listen", mode_names[e->mode]);
	if (p0 <= 0)
		return;
	struct honest h[2];
	int p1 = spare_port(), p2 = spare_port();
	pthread_t tf, th[2];
	pthread_create(&tf, NULL, fake_run, &f);
	for (int i = 0; i < 2; i++) {
		memset(&h[i], 0, sizeof h[i]);
		h[i].id = i + 1;
		h[i].port[0] = p0, h[i].port[1] = p1, h[i].port[2] = p2;
		h[i].timeout_ms = 1000;
		pthread_create(&th[i], NULL, honest_run, &h[i]);
	}
	int found = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		const char *name = mode_names[e->mode];
		CHECK(h[i].rc == CDM_EPROTO || h[i].rc == CDM_ENET,
		      "%s: party %d returned %d (%s), expected a protocol or network error", name,
		      h[i].id, h[i].rc, h[i].err.msg);
		CHECK(h[i].seconds < 2.5, "%s: party %d took %.2f s with a 1 s timeout", name,
		      h[i].id, h[i].seconds);
		CHECK(h[i].err.msg[0] && !strchr(h[i].err.msg, '\n'), "%s: party %d: message '%s'",
		      name, h[i].id, h[i].err.msg);
		for (int k = 0; k < 3 && e->pat[k]; k++)
			found |= strstr(h[i].err.msg, e->pat[k]) != NULL;
		fprintf(stderr, "  %-8s party %d after %.2f s: %s\n", name, h[i].id, h[i].seconds,
			h[i].err.msg);
	}
	CHECK(found, "%s: no party reported '%s'", mode_names[e->mode], e->pat[0]);
	pthread_join(tf, NULL);
	CHECK(f.conns >= 1, "%s: the fake saw no connection", mode_names[e->mode]);
	close(f.lfd);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve(argc, argv);
	if (argc > 1) {
		fprintf(stderr, "usage: test_fakepeer [serve PORT MODE SECONDS]\n");
		return 1;
	}
	check_seed();
	static const struct expect cases[] = {
		{M_RANDOM, {"not a cipherdm party", "bad hello magic"}},
		{M_SILENT, {"timeout", "timed out"}},
		{M_CLOSE, {"closed the connection"}},
		{M_STALL, {"timeout", "timed out"}},
		{M_GARBAGE, {"bad magic", "not a cipherdm frame"}},
		{M_SESSION, {"session 0x"}},
		{M_SEQ, {"sequence number 5, expected 0"}},
		{M_LENGTH, {"length 4611686018427387904, expected 8"}},
		{M_SHORT, {"cut short after 20 of 40 bytes"}},
		{M_TRICKLE, {"no complete frame in 1 s (timeout)"}},
		{M_DRIP, {"no complete frame in", "timeout"}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		self_test_mode(&cases[i]);
	return check_done();
}
