/*
 * net.c: the round engine (framing, poll loop, timeouts, counters) and the
 * in-process mode. Connecting over TCP lives in tcp.c, TLS in tls.c; all
 * three modes move bytes through net_run() below.
 *
 * Why a poll loop that interleaves sends and receives: a party that first
 * wrote everything and then read would deadlock as soon as two peers send
 * each other more than the socket buffers hold. So every pass tries to move
 * bytes on every channel in both directions until the kernel says "would
 * block", and only then sleeps in poll() on exactly those directions.
 */
#define _GNU_SOURCE
#include "net_impl.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers -------------------------------------------------------- */

int64_t net_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

void net_encode_hdr(uint8_t h[NET_HDR], uint32_t flags, uint64_t session, uint64_t seq,
		    uint64_t len)
{
	put32(h, NET_MAGIC);
	put32(h + 4, flags);
	put64(h + 8, session);
	put64(h + 16, seq);
	put64(h + 24, len);
}

static long sysctl_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Large buffers keep big transfers streaming; NODELAY keeps the many small
 * messages of a protocol round from waiting on Nagle. On TCP, a fixed
 * SO_SNDBUF/SO_RCVBUF also switches off the kernel's autotuning, so it is
 * set only where the system allows the full 4 MB (net.core.wmem_max /
 * rmem_max); elsewhere autotuning does better. Failures only cost speed,
 * so they are ignored. */
void net_tune_socket(int fd, int tcp)
{
	int one = 1, big = 4 << 20;
	if (!tcp || sysctl_long("/proc/sys/net/core/wmem_max") >= big)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	if (!tcp || sysctl_long("/proc/sys/net/core/rmem_max") >= big)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	if (tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int net_alloc(cdm_net **out, int id, struct cdm_err *err)
{
	cdm_net *net = calloc(1, sizeof *net);
	if (!net)
		return cdm_fail(err, CDM_ENOMEM, "party %d: cannot allocate the network context", id);
	net->id = id;
	net->timeout_ms = CDM_NET_TIMEOUT_MS_DEFAULT;
	for (int p = 0; p < CDM_PARTIES; p++) {
		net->ch[p].fd = -1;
		snprintf(net->ch[p].name, sizeof net->ch[p].name, "peer %d", p);
	}
	*out = net;
	return 0;
}

void cdm_net_free(cdm_net *net)
{
	if (!net)
		return;
	for (int p = 0; p < CDM_PARTIES; p++) {
		net_tls_free_chan(&net->ch[p]);
		if (net->ch[p].fd >= 0)
			close(net->ch[p].fd);
		free(net->ch[p].stage);
	}
	net_tls_free_ctx(net->ssl_ctx);
	free(net);
}

int cdm_net_id(const cdm_net *net) { return net->id; }
uint64_t cdm_net_session(const cdm_net *net) { return net->session; }
const char *cdm_net_warning(const cdm_net *net) { return net->warning[0] ? net->warning : NULL; }

void cdm_net_set_timeout(cdm_net *net, int timeout_ms)
{
	net->timeout_ms = timeout_ms > 0 ? timeout_ms : CDM_NET_TIMEOUT_MS_DEFAULT;
}

void cdm_net_get_stats(const cdm_net *net, struct cdm_net_stats *out) { *out = net->stats; }

/* ---- posting jobs ---------------------------------------------------------- */

void net_post_send(cdm_net *net, int p, uint32_t flags, uint64_t seq, const void *buf,
		   size_t len)
{
	struct net_chan *c = &net->ch[p];
	net_encode_hdr(c->out_hdr, flags, flags & NET_FLAG_HELLO ? 0 : net->session, seq, len);
	c->out = buf;
	c->out_total = NET_HDR + len;
	c->out_done = 0;
	c->staged = 0;
	if (c->ssl && len <= NET_STAGE) {
		memcpy(c->stage, c->out_hdr, NET_HDR);
		if (len)
			memcpy(c->stage + NET_HDR, buf, len);
		c->staged = 1;
	}
}

void net_post_recv(cdm_net *net, int p, uint32_t flags, void *buf, size_t len)
{
	struct net_chan *c = &net->ch[p];
	c->in = buf;
	c->in_total = NET_HDR + len;
	c->in_done = 0;
	c->in_flags = flags;
	c->in_checked = 0;
}

/* ---- one channel, one direction ------------------------------------------- */

int net_closed_err(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	if (c->in_total && c->in_done)
		return cdm_fail(err, CDM_ENET,
				"%s closed the connection (frame %llu cut short after %zu of %zu bytes)",
				c->name, (unsigned long long)c->recv_seq, c->in_done, c->in_total);
	if (net->connecting && c->ssl)
		return cdm_fail(err, CDM_ENET,
				"%s closed the connection during the TLS handshake (did it refuse our certificate?)",
				c->name);
	return cdm_fail(err, CDM_ENET, "%s closed the connection", c->name);
}

static int sys_err(cdm_net *net, int p, const char *what, int e, struct cdm_err *err)
{
	if (e == EPIPE || e == ECONNRESET || e == ENOTCONN)
		return net_closed_err(net, p, err);
	return cdm_fail(err, CDM_ENET, "%s: %s: %s", net->ch[p].name, what, strerror(e));
}

/* Check the header of the incoming frame as soon as its 32 bytes are in. */
static int check_hdr(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	const uint8_t *h = c->in_hdr;
	unsigned long long seq = c->recv_seq;
	int hello = (c->in_flags & NET_FLAG_HELLO) != 0;
	uint64_t want_session = hello ? 0 : net->session;
	uint64_t want_seq = hello ? 0 : c->recv_seq;
	uint64_t want_len = c->in_total - NET_HDR;
	c->in_checked = 1;
	if (hello && get32(h) != NET_MAGIC)
		return cdm_fail(err, CDM_EPROTO,
				"%s: not a cipherdm party (bad hello magic 0x%08x; TLS on one side only?)",
				c->name, (unsigned)get32(h));
	if (get32(h) != NET_MAGIC)
		return cdm_fail(err, CDM_EPROTO,
				"%s: frame %llu: bad magic 0x%08x (not a cipherdm frame)", c->name, seq,
				(unsigned)get32(h));
	if (get32(h + 4) != c->in_flags)
		return cdm_fail(err, CDM_EPROTO, "%s: frame %llu: flags 0x%x, expected 0x%x",
				c->name, seq, (unsigned)get32(h + 4), (unsigned)c->in_flags);
	if (get64(h + 8) != want_session)
		return cdm_fail(err, CDM_EPROTO,
				"%s: frame %llu: session 0x%016llx, expected 0x%016llx", c->name, seq,
				(unsigned long long)get64(h + 8), (unsigned long long)want_session);
	if (get64(h + 16) != want_seq)
		return cdm_fail(err, CDM_EPROTO, "%s: frame %llu: sequence number %llu, expected %llu",
				c->name, seq, (unsigned long long)get64(h + 16), (unsigned long long)want_seq);
	if (get64(h + 24) != want_len)
		return cdm_fail(err, CDM_EPROTO, "%s: frame %llu: length %llu, expected %llu",
				c->name, seq, (unsigned long long)get64(h + 24), (unsigned long long)want_len);
	return 0;
}

/* The byte range [done, total) of a frame as up to two iovecs: the rest of
 * the header and the rest of the payload. */
static int frame_iov(struct iovec iov[2], uint8_t *hdr, uint8_t *payload, size_t done,
		     size_t total)
{
	int n = 0;
	if (done < NET_HDR) {
		iov[n].iov_base = hdr + done;
		iov[n++].iov_len = NET_HDR - done;
		done = NET_HDR;
	}
	if (done < total) {
		iov[n].iov_base = payload + (done - NET_HDR);
		iov[n++].iov_len = total - done;
	}
	return n;
}

/* Raw transfer of up to len bytes: > 0 moved, 0 would block, < 0 error. */
static long chan_write(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	if (c->ssl) {
		if (c->staged)
			return net_tls_write(net, p, c->stage + c->out_done,
					     c->out_total - c->out_done, err);
		if (c->out_done < NET_HDR)
			return net_tls_write(net, p, c->out_hdr + c->out_done, NET_HDR - c->out_done, err);
		return net_tls_write(net, p, c->out + (c->out_done - NET_HDR),
				     c->out_total - c->out_done, err);
	}
	struct iovec iov[2];
	struct msghdr m = {0};
	m.msg_iov = iov;
	m.msg_iovlen = frame_iov(iov, c->out_hdr, (uint8_t *)c->out, c->out_done, c->out_total);
	for (;;) {
		/* sendmsg rather than writev: MSG_NOSIGNAL, so a dead peer is
		 * an error return and never a SIGPIPE. */
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want |= POLLOUT;
			return 0;
		}
		return sys_err(net, p, "send", errno, err);
	}
}

static long chan_read(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	if (c->ssl) {
		if (c->in_done < NET_HDR)
			return net_tls_read(net, p, c->in_hdr + c->in_done, NET_HDR - c->in_done, err);
		return net_tls_read(net, p, c->in + (c->in_done - NET_HDR), c->in_total - c->in_done,
				    err);
	}
	struct iovec iov[2];
	int n_iov = frame_iov(iov, c->in_hdr, c->in, c->in_done, c->in_total);
	for (;;) {
		ssize_t n = readv(c->fd, iov, n_iov);
		if (n > 0)
			return n;
		if (n == 0)
			return net_closed_err(net, p, err);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want |= POLLIN;
			return 0;
		}
		return sys_err(net, p, "receive", errno, err);
	}
}

/* What counts as progress for the timeout: a frame sent or received in
 * full, or this many bytes moved. A peer that trickles a byte now and then
 * without ever completing a frame (a stuck or hostile peer, slowloris
 * style) must not keep the others waiting past the timeout, while a large
 * frame on any real link moves far more than this per timeout. */
#define NET_PROGRESS_BYTES (64u << 10)

struct pump {
	uint64_t bytes; /* moved since the last progress */
	int done;       /* a frame completed */
};

/* Move bytes on channel p until its jobs are done or the kernel would
 * block, counting them into *pu. */
static int chan_pump(cdm_net *net, int p, struct pump *pu, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	c->want = 0;
	while (c->out_total) {
		long n = chan_write(net, p, err);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		pu->bytes += (uint64_t)n;
		c->out_done += (size_t)n;
		net->stats.bytes_sent += (uint64_t)n;
		if (c->out_done == c->out_total) {
			c->out_total = 0;
			pu->done = 1;
			net->stats.messages_sent++;
		}
	}
	while (c->in_total) {
		long n = chan_read(net, p, err);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		pu->bytes += (uint64_t)n;
		c->in_done += (size_t)n;
		net->stats.bytes_recv += (uint64_t)n;
		if (!c->in_checked && c->in_done >= NET_HDR)
			CDM_TRY(check_hdr(net, p, err));
		if (c->in_done == c->in_total) {
			c->in_total = 0;
			pu->done = 1;
		}
	}
	return 0;
}

/* trickled: bytes that moved since the last progress without completing
 * a frame (0: the peer was silent) */
static int timeout_err(cdm_net *net, uint64_t trickled, struct cdm_err *err)
{
	int p = 0;
	for (int q = 0; q < CDM_PARTIES; q++)
		if (q != net->id && (net->ch[q].in_total || net->ch[q].out_total)) {
			p = q;
			if (net->ch[q].in_total)
				break; /* prefer a peer we are waiting to hear from */
		}
	int ms = net->timeout_ms;
	if (trickled)
		return cdm_fail(err, CDM_ENET, "%s: only %llu bytes and no complete frame in %.*f s "
				"(timeout)", net->ch[p].name, (unsigned long long)trickled,
				ms % 1000 ? 1 : 0, ms / 1000.0);
	if (ms % 1000 == 0)
		return cdm_fail(err, CDM_ENET, "%s: no data for %d s (timeout)", net->ch[p].name,
				ms / 1000);
	return cdm_fail(err, CDM_ENET, "%s: no data for %.1f s (timeout)", net->ch[p].name,
			ms / 1000.0);
}

int net_run(cdm_net *net, struct cdm_err *err)
{
	int64_t last = -1; /* time of the last progress, read lazily */
	uint64_t since = 0; /* bytes moved since then */
	for (;;) {
		struct pollfd pf[CDM_PARTIES];
		int np = 0;
		struct pump pu = {0, 0};
		for (int p = 0; p < CDM_PARTIES; p++) {
			struct net_chan *c = &net->ch[p];
			if (p == net->id || (!c->out_total && !c->in_total))
				continue;
			CDM_TRY(chan_pump(net, p, &pu, err));
			if (c->want) {
				pf[np].fd = c->fd;
				pf[np].events = c->want;
				pf[np++].revents = 0;
			}
		}
		if (np == 0)
			return 0;
		int64_t now = net_now_ms();
		since += pu.bytes;
		if (pu.done || since >= NET_PROGRESS_BYTES || last < 0) {
			last = now;
			since = 0;
		}
		int64_t left = last + net->timeout_ms - now;
		if (left <= 0)
			return timeout_err(net, since, err);
		int rc = poll(pf, (nfds_t)np, (int)left);
		if (rc < 0 && errno != EINTR)
			return cdm_fail(err, CDM_ENET, "party %d: poll: %s", net->id, strerror(errno));
	}
}

/* ---- public round API -------------------------------------------------------- */

int cdm_net_round(cdm_net *net, const struct cdm_xfer *x, struct cdm_err *err)
{
	int active = 0;
	for (int p = 0; p < CDM_PARTIES; p++) {
		struct net_chan *c = &net->ch[p];
		c->out_total = c->in_total = 0;
		if (p == net->id)
			continue;
		if ((x->send_len[p] && !x->send[p]) || (x->recv_len[p] && !x->recv[p]))
			return cdm_fail(err, CDM_EINTERNAL, "party %d: round with a NULL buffer for peer %d",
					net->id, p);
		if ((x->send_len[p] || x->recv_len[p]) && c->fd < 0)
			return cdm_fail(err, CDM_ENET, "party %d: no connection to peer %d", net->id, p);
		if (x->send_len[p]) {
			net_post_send(net, p, 0, c->send_seq++, x->send[p], x->send_len[p]);
			active = 1;
		}
		if (x->recv_len[p]) {
			net_post_recv(net, p, 0, x->recv[p], x->recv_len[p]);
			active = 1;
		}
	}
	if (!active)
		return 0;
	net->stats.rounds++;
	int rc = net_run(net, err);
	for (int p = 0; p < CDM_PARTIES; p++)
		if (p != net->id && x->recv_len[p] && net->ch[p].in_total == 0)
			net->ch[p].recv_seq++;
	return rc;
}

int cdm_net_pass(cdm_net *net, const void *to_next, void *from_prev, size_t len,
		 struct cdm_err *err)
{
	struct cdm_xfer x = {0};
	int next = (net->id + 1) % CDM_PARTIES, prev = (net->id + CDM_PARTIES - 1) % CDM_PARTIES;
	x.send[next] = to_next;
	x.send_len[next] = len;
	x.recv[prev] = from_prev;
	x.recv_len[prev] = len;
	return cdm_net_round(net, &x, err);
}

int cdm_net_send_raw(cdm_net *net, int peer, const void *buf, size_t len, struct cdm_err *err)
{
	if (peer < 0 || peer >= CDM_PARTIES || peer == net->id || net->ch[peer].fd < 0)
		return cdm_fail(err, CDM_EINTERNAL, "party %d: no connection to peer %d", net->id, peer);
	if (len < NET_HDR)
		return cdm_fail(err, CDM_EINTERNAL, "raw send needs at least %d bytes", NET_HDR);
	for (int p = 0; p < CDM_PARTIES; p++)
		net->ch[p].out_total = net->ch[p].in_total = 0;
	/* Reuse the frame machinery: the first 32 bytes go out as the header. */
	struct net_chan *c = &net->ch[peer];
	net_post_send(net, peer, 0, 0, (const uint8_t *)buf + NET_HDR, len - NET_HDR);
	memcpy(c->out_hdr, buf, NET_HDR);
	if (c->staged)
		memcpy(c->stage, buf, NET_HDR);
	return net_run(net, err);
}

/* ---- in-process mode ------------------------------------------------------------ */

int cdm_net_local(cdm_net *out[CDM_PARTIES], struct cdm_err *err)
{
	uint64_t session = 0;
	while (session == 0)
		if (getrandom(&session, sizeof session, 0) != (ssize_t)sizeof session)
			session = (uint64_t)net_now_ms() * 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < CDM_PARTIES; i++)
		out[i] = NULL;
	for (int i = 0; i < CDM_PARTIES; i++) {
		if (net_alloc(&out[i], i, err) < 0)
			goto fail;
		out[i]->session = session;
	}
	for (int a = 0; a < CDM_PARTIES; a++)
		for (int b = a + 1; b < CDM_PARTIES; b++) {
			int sv[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
				cdm_fail(err, CDM_ENET, "in-process network: socketpair: %s",
					 strerror(errno));
				goto fail;
			}
			net_tune_socket(sv[0], 0);
			net_tune_socket(sv[1], 0);
			out[a]->ch[b].fd = sv[0];
			out[b]->ch[a].fd = sv[1];
		}
	return 0;
fail:
	for (int i = 0; i < CDM_PARTIES; i++) {
		cdm_net_free(out[i]);
		out[i] = NULL;
	}
	return err ? err->code : CDM_ENET;
}
