/*
 * tcp.c: cdm_net_connect -- listening, connecting with retry and backoff,
 * accepting, the TLS handshakes (tls.c) and the hello exchange that
 * identifies peers and agrees the session id.
 *
 * Who dials whom: party i listens on port[i], connects to every party with
 * a lower id and accepts the parties with higher ids. Listening starts
 * before dialling, so a dial always completes into the peer's backlog even
 * while that peer is still dialling someone else: no start order deadlocks,
 * and a party started up to connect_timeout_ms late is still met.
 *
 * An accepted connection is anonymous until its hello (plain TCP) or its
 * certificate (TLS) says which party it is; until then the channel is
 * named after its address and sits in a provisional slot.
 *
 * Hello (a frame with flags NET_FLAG_HELLO, session 0, seq 0), 32 bytes:
 *   u32 version | u32 party id | u64 nonce | u64 requested session | u64 0
 * The session id is a hash of the three nonces (everyone sees all three),
 * or the requested session when the options fix one (then all must agree).
 */
#define _GNU_SOURCE
#include "net_impl.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS_DEFAULT 120000

/* ---- addresses ---------------------------------------------------------------- */

static void addr_text(const struct sockaddr *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		port = ntohs(a->sin_port);
		snprintf(out, n, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		port = ntohs(a->sin6_port);
		snprintf(out, n, "[%s]:%d", host, port);
	} else {
		snprintf(out, n, "?");
	}
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
	}
	return 1; /* not IP: nothing leaves the machine */
}

/* Remember the first non-loopback peer of a plain connection. */
static void note_address(cdm_net *net, const struct cdm_net_opts *o, const struct sockaddr *sa)
{
	if (o->quiet || net->ssl_ctx || net->warning[0] || is_loopback(sa))
		return;
	char text[80];
	addr_text(sa, text, sizeof text);
	snprintf(net->warning, sizeof net->warning,
		 "plain TCP to %s: traffic between parties is neither encrypted nor "
		 "authenticated (use TLS: --tls-cert, --tls-key, --tls-ca)",
		 text);
}

static int resolve(const char *host, int port, int passive, struct addrinfo **res,
		   struct cdm_err *err)
{
	struct addrinfo hints = {0};
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = host ? AF_UNSPEC : AF_INET;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	int rc = getaddrinfo(host, ps, &hints, res);
	if (rc == EAI_SYSTEM)
		return cdm_fail(err, CDM_EINPUT, "cannot resolve host '%s': %s", host, strerror(errno));
	if (rc)
		return cdm_fail(err, CDM_EINPUT, "cannot resolve host '%s': %s", host, gai_strerror(rc));
	return 0;
}

/* ---- listen, dial, accept -------------------------------------------------------- */

static int listen_on(const struct cdm_net_opts *o, int *lfd, struct cdm_err *err)
{
	const char *host = o->host[o->id] && o->host[o->id][0] ? o->host[o->id] : NULL;
	int port = o->port[o->id];
	struct addrinfo *res;
	CDM_TRY(resolve(host, port, 1, &res, err));
	int e = 0;
	*lfd = -1;
	for (struct addrinfo *ai = res; ai && *lfd < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		net_tune_socket(fd, 1); /* before listen: accepted sockets inherit it */
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 8) < 0) {
			e = errno;
			close(fd);
			continue;
		}
		*lfd = fd;
	}
	freeaddrinfo(res);
	if (*lfd < 0)
		return cdm_fail(err, CDM_ENET, "cannot listen on %s:%d: %s", host ? host : "0.0.0.0",
				port, strerror(e));
	return 0;
}

/* One non-blocking connect attempt; returns the fd or -1 with *e set. */
static int try_connect(const struct addrinfo *ai, int64_t deadline, int *e)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*e = errno;
		return -1;
	}
	/* Buffer sizes before connect, so the window scale in the SYN fits. */
	net_tune_socket(fd, 1);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*e = errno;
		close(fd);
		return -1;
	}
	for (;;) {
		int64_t left = deadline - net_now_ms();
		struct pollfd pf = {.fd = fd, .events = POLLOUT};
		int rc = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			/* Out of time: keep the last real error for the message. */
			if (rc < 0)
				*e = errno;
			close(fd);
			return -1;
		}
		break;
	}
	socklen_t len = sizeof *e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, e, &len) < 0)
		*e = errno;
	if (*e) {
		close(fd);
		return -1;
	}
	return fd;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Dial party p until it answers or the deadline passes (backoff 50 ms
 * doubling to 1 s: quick when the peer is up, quiet while it is not). */
static int dial(cdm_net *net, const struct cdm_net_opts *o, int p, int64_t deadline,
		int64_t start, struct cdm_err *err)
{
	const char *host = o->host[p] && o->host[p][0] ? o->host[p] : "127.0.0.1";
	struct addrinfo *res;
	CDM_TRY(resolve(host, o->port[p], 0, &res, err));
	int64_t backoff = 50;
	int e = 0;
	for (;;) {
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			int fd = try_connect(ai, deadline, &e);
			if (fd < 0)
				continue;
			net->ch[p].fd = fd;
			note_address(net, o, ai->ai_addr);
			freeaddrinfo(res);
			return 0;
		}
		int64_t left = deadline - net_now_ms();
		if (left <= 0)
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
	}
	freeaddrinfo(res);
	return cdm_fail(err, CDM_ENET, "cannot connect to party %d at %s:%d: %s (gave up after %.0f s)",
			p, host, o->port[p], strerror(e ? e : ETIMEDOUT),
			(net_now_ms() - start) / 1000.0);
}

/* Accept the parties above us into the provisional slots id+1 .. 2. */
static int accept_all(cdm_net *net, const struct cdm_net_opts *o, int lfd, int64_t deadline,
		      int64_t start, struct cdm_err *err)
{
	for (int p = net->id + 1; p < CDM_PARTIES;) {
		int64_t left = deadline - net_now_ms();
		struct pollfd pf = {.fd = lfd, .events = POLLIN};
		int rc = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return cdm_fail(err, CDM_ENET, "party %d: poll: %s", net->id, strerror(errno));
		if (rc == 0) {
			int missing = CDM_PARTIES - p;
			return cdm_fail(err, CDM_ENET,
					"timed out after %.0f s waiting for %s to connect to port %d",
					(net_now_ms() - start) / 1000.0,
					missing == 2 ? "parties 1 and 2" : p == 2 && net->id == 0 ? "one more party" : "party 2",
					o->port[net->id]);
		}
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			return cdm_fail(err, CDM_ENET, "party %d: accept on port %d: %s", net->id,
					o->port[net->id], strerror(errno));
		}
		net_tune_socket(fd, 1);
		struct net_chan *c = &net->ch[p++];
		c->fd = fd;
		c->accepted = 1;
		char text[80];
		addr_text((struct sockaddr *)&ss, text, sizeof text);
		snprintf(c->name, sizeof c->name, "peer from %s", text);
		note_address(net, o, (struct sockaddr *)&ss);
	}
	return 0;
}

/* ---- hello ----------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

/* Check the claim of the peer in slot p; returns the party it is. */
static int check_claim(cdm_net *net, const struct cdm_net_opts *o, int p, const uint8_t *h,
		       int taken, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	uint32_t ver = rd32(h), who = rd32(h + 4);
	if (ver != NET_VERSION)
		return cdm_fail(err, CDM_EPROTO, "%s speaks protocol version %u, this build speaks %u",
				c->name, (unsigned)ver, NET_VERSION);
	if (!c->accepted) {
		if (who != (uint32_t)p)
			return cdm_fail(err, CDM_EPROTO, "peer on port %d says it is party %u, expected party %d",
					o->port[p], (unsigned)who, p);
		return p;
	}
	if (who >= CDM_PARTIES || (int)who <= net->id || (taken >> who & 1)) {
		const char *exp = net->id == 0 ? "party 1 or 2" : "party 2";
		if (who < CDM_PARTIES && (taken >> who & 1))
			exp = net->id == 0 ? "the other of parties 1 and 2" : "party 2";
		return cdm_fail(err, CDM_EPROTO, "%s says it is party %u, expected %s", c->name,
				(unsigned)who, exp);
	}
	if (c->ssl && c->cert_party != (int)who)
		return cdm_fail(err, CDM_EPROTO, "%s has the certificate of party%d but says it is party %u",
				c->name, c->cert_party, (unsigned)who);
	return (int)who;
}

static int hello(cdm_net *net, const struct cdm_net_opts *o, int64_t deadline,
		 struct cdm_err *err)
{
	uint8_t mine[32] = {0}, theirs[CDM_PARTIES][32];
	uint64_t nonce[CDM_PARTIES] = {0};
	if (getrandom(&nonce[net->id], 8, 0) != 8)
		nonce[net->id] = mix64((uint64_t)net_now_ms() ^ (uint64_t)getpid() << 32);
	uint32_t v32 = htole32(NET_VERSION), id32 = htole32((uint32_t)net->id);
	uint64_t n64 = htole64(nonce[net->id]), s64 = htole64(o->session);
	memcpy(mine, &v32, 4);
	memcpy(mine + 4, &id32, 4);
	memcpy(mine + 8, &n64, 8);
	memcpy(mine + 16, &s64, 8);
	for (int p = 0; p < CDM_PARTIES; p++) {
		if (p == net->id)
			continue;
		net_post_send(net, p, NET_FLAG_HELLO, 0, mine, sizeof mine);
		net_post_recv(net, p, NET_FLAG_HELLO, theirs[p], sizeof theirs[p]);
	}
	int keep = net->timeout_ms;
	int64_t left = deadline - net_now_ms();
	net->timeout_ms = left > 1 ? (int)left : 1;
	int rc = net_run(net, err);
	net->timeout_ms = keep;
	CDM_TRY(rc);

	int where[CDM_PARTIES], taken = 0;
	for (int p = 0; p < CDM_PARTIES; p++) {
		if (p == net->id)
			continue;
		int who = check_claim(net, o, p, theirs[p], taken, err);
		if (who < 0)
			return who;
		where[p] = who;
		taken |= 1 << who;
		if (rd64(theirs[p] + 16) != o->session)
			return cdm_fail(err, CDM_EPROTO,
					"party %d asks for session 0x%016llx, this party for 0x%016llx", who,
					(unsigned long long)rd64(theirs[p] + 16),
					(unsigned long long)o->session);
		nonce[who] = rd64(theirs[p] + 8);
	}
	/* Party 0 may have accepted party 2 first: put each channel at its id. */
	if (net->id == 0 && where[1] == 2) {
		struct net_chan t = net->ch[1];
		net->ch[1] = net->ch[2];
		net->ch[2] = t;
	}
	for (int p = 0; p < CDM_PARTIES; p++)
		snprintf(net->ch[p].name, sizeof net->ch[p].name, "peer %d", p);
	uint64_t h = 0x636970686572646dULL; /* "cipherdm" */
	for (int p = 0; p < CDM_PARTIES; p++)
		h = mix64(h ^ nonce[p]);
	net->session = o->session ? o->session : h ? h : 1;
	return 0;
}

/* ---- cdm_net_connect ------------------------------------------------------------------ */

static int check_opts(const struct cdm_net_opts *o, struct cdm_err *err)
{
	if (o->id < 0 || o->id >= CDM_PARTIES)
		return cdm_fail(err, CDM_EINPUT, "party id %d: must be 0, 1 or 2", o->id);
	for (int p = 0; p < CDM_PARTIES; p++)
		if (o->port[p] <= 0 || o->port[p] > 65535)
			return cdm_fail(err, CDM_EINPUT, "port of party %d: %d is not a TCP port (1-65535)",
					p, o->port[p]);
	int n_tls = !!o->tls_cert + !!o->tls_key + !!o->tls_ca;
	if (n_tls != 0 && n_tls != 3)
		return cdm_fail(err, CDM_EINPUT, "TLS needs a certificate, a key and a CA (%s missing)",
				!o->tls_cert ? "certificate" : !o->tls_key ? "key" : "CA");
	if (o->timeout_ms < 0 || o->connect_timeout_ms < 0)
		return cdm_fail(err, CDM_EINPUT, "negative timeout");
	return 0;
}

static int connect_all(cdm_net *net, const struct cdm_net_opts *o, struct cdm_err *err)
{
	int64_t start = net_now_ms();
	int64_t deadline = start + (o->connect_timeout_ms ? o->connect_timeout_ms
							   : CONNECT_TIMEOUT_MS_DEFAULT);
	int lfd = -1, rc = 0;
	if (o->tls_cert)
		CDM_TRY(net_tls_init(net, o, err));
	if (net->id < CDM_PARTIES - 1)
		CDM_TRY(listen_on(o, &lfd, err));
	for (int p = 0; p < net->id && rc == 0; p++)
		rc = dial(net, o, p, deadline, start, err);
	if (rc == 0 && lfd >= 0)
		rc = accept_all(net, o, lfd, deadline, start, err);
	if (lfd >= 0)
		close(lfd);
	CDM_TRY(rc);
	if (net->ssl_ctx) {
		for (int p = 0; p < CDM_PARTIES; p++)
			if (p != net->id)
				CDM_TRY(net_tls_attach(net, p, err));
		CDM_TRY(net_tls_handshake(net, deadline, err));
	}
	return hello(net, o, deadline, err);
}

int cdm_net_connect(cdm_net **out, const struct cdm_net_opts *o, struct cdm_err *err)
{
	*out = NULL;
	CDM_TRY(check_opts(o, err));
	cdm_net *net;
	CDM_TRY(net_alloc(&net, o->id, err));
	net->timeout_ms = o->timeout_ms ? o->timeout_ms : CDM_NET_TIMEOUT_MS_DEFAULT;
	net->connecting = 1;
	int rc = connect_all(net, o, err);
	if (rc < 0) {
		cdm_err_prefix(err, "party %d: ", o->id);
		cdm_net_free(net);
		return rc;
	}
	net->connecting = 0;
	memset(&net->stats, 0, sizeof net->stats); /* count protocol traffic only */
	*out = net;
	return 0;
}
