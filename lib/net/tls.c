/*
 * tls.c: TLS 1.3 sessions for lib/net (OpenSSL).
 *
 * Both sides present a certificate signed by the parties' CA (mutual
 * authentication, TLS 1.3 only), and each side checks that the peer's
 * certificate names the party it is supposed to be ("party0", "party1",
 * "party2" as DNS SAN, or CN when there is no DNS SAN): a valid certificate
 * of another party is refused.
 *
 * Sockets stay non-blocking and go through the same poll loop as plain TCP
 * (net.c): SSL_ERROR_WANT_READ / WANT_WRITE become the events a channel
 * waits for, and because net.c always tries to read before it polls,
 * records OpenSSL already holds (SSL_pending) are never left waiting.
 *
 * OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
 * the peer is gone; a tiny BIO of our own uses send(MSG_NOSIGNAL) instead,
 * so a dead peer is an error return, never a killed process.
 */
#define _GNU_SOURCE
#include "net_impl.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- a socket BIO that never raises SIGPIPE --------------------------------------- */

struct sock_bio {
	int fd;
	int eof;     /* the peer closed its side */
	int sys_err; /* errno of the last failed send/recv, 0 if none */
};

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int sb_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct sock_bio *sb = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	for (;;) {
		ssize_t n = send(sb->fd, data, len, MSG_NOSIGNAL);
		if (n >= 0) {
			*written = (size_t)n;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		else
			sb->sys_err = errno;
		return 0;
	}
}

static int sb_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct sock_bio *sb = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	for (;;) {
		ssize_t n = recv(sb->fd, data, len, 0);
		if (n > 0) {
			*readbytes = (size_t)n;
			return 1;
		}
		if (n == 0) {
			sb->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		else
			sb->sys_err = errno;
		return 0;
	}
}

static long sb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sock_bio *sb = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return sb ? sb->eof : 1;
	case BIO_C_GET_FD:
		if (!sb)
			return -1;
		if (ptr)
			*(int *)ptr = sb->fd;
		return sb->fd;
	default:
		return 0;
	}
}

static int sb_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cdm socket");
	if (m && BIO_meth_set_write_ex(m, sb_write) && BIO_meth_set_read_ex(m, sb_read) &&
	    BIO_meth_set_ctrl(m, sb_ctrl) && BIO_meth_set_destroy(m, sb_destroy))
		bio_method = m;
	else
		BIO_meth_free(m);
}

static struct sock_bio *chan_bio(struct net_chan *c)
{
	return BIO_get_data(SSL_get_rbio(c->ssl));
}

/* ---- errors ------------------------------------------------------------------------ */

/* The most telling OpenSSL reason on the queue, plus the verify result. */
static void ssl_reason(SSL *ssl, char *out, size_t n)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(out, n, "%s", r ? r : "unknown TLS error");
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (v != X509_V_OK && e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		size_t len = strlen(out);
		snprintf(out + len, n - len, " (%s)", X509_verify_cert_error_string(v));
	}
	ERR_clear_error();
}

/* Turn a failed SSL call into "would block" (0, c->want set) or an error. */
static long tls_status(cdm_net *net, int p, int ret, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	struct sock_bio *sb = chan_bio(c);
	const char *what = net->connecting ? "TLS handshake failed" : "TLS";
	char why[200];
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		c->want |= POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want |= POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return net_closed_err(net, p, err);
	case SSL_ERROR_SSL:
		if (ERR_peek_error() && !(sb->eof && ERR_GET_REASON(ERR_peek_error()) ==
							     SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
			ssl_reason(c->ssl, why, sizeof why);
			return cdm_fail(err, CDM_ENET, "%s: %s: %s", c->name, what, why);
		}
		break;
	default:
		break;
	}
	ERR_clear_error();
	if (sb->eof || sb->sys_err == EPIPE || sb->sys_err == ECONNRESET || !sb->sys_err)
		return net_closed_err(net, p, err);
	return cdm_fail(err, CDM_ENET, "%s: %s: %s", c->name, what, strerror(sb->sys_err));
}

long net_tls_write(cdm_net *net, int p, const void *buf, size_t len, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	size_t done = 0;
	ERR_clear_error();
	int ret = SSL_write_ex(c->ssl, buf, len, &done);
	if (ret > 0)
		return (long)done;
	return tls_status(net, p, ret, err);
}

long net_tls_read(cdm_net *net, int p, void *buf, size_t len, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	size_t done = 0;
	ERR_clear_error();
	int ret = SSL_read_ex(c->ssl, buf, len, &done);
	if (ret > 0)
		return (long)done;
	return tls_status(net, p, ret, err);
}

/* ---- setup ------------------------------------------------------------------------- */

/* Which of party0..party2 a certificate names; -1 none, -2 several. */
static int cert_party(X509 *cert)
{
	int who = -1;
	for (int q = 0; q < CDM_PARTIES; q++) {
		char name[8];
		snprintf(name, sizeof name, "party%d", q);
		if (X509_check_host(cert, name, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1)
			who = who == -1 ? q : -2;
	}
	return who;
}

static int file_fail(const char *what, const char *path, struct cdm_err *err)
{
	char why[200];
	if (access(path, R_OK) < 0)
		snprintf(why, sizeof why, "%s", strerror(errno));
	else
		ssl_reason(NULL, why, sizeof why);
	ERR_clear_error();
	return cdm_fail(err, CDM_EINPUT, "TLS %s '%s': %s", what, path, why);
}

int net_tls_init(cdm_net *net, const struct cdm_net_opts *o, struct cdm_err *err)
{
	pthread_once(&bio_once, bio_method_init);
	if (!bio_method)
		return cdm_fail(err, CDM_EINTERNAL, "TLS: cannot create the socket BIO");
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx)
		return cdm_fail(err, CDM_ENOMEM, "TLS: cannot create a context");
	net->ssl_ctx = ctx;
	ERR_clear_error();
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		return cdm_fail(err, CDM_EINTERNAL, "TLS: this OpenSSL has no TLS 1.3");
	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1)
		return file_fail("certificate", o->tls_cert, err);
	if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) != ERR_LIB_X509 || ERR_GET_REASON(e) != X509_R_KEY_VALUES_MISMATCH)
			return file_fail("key", o->tls_key, err);
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		return cdm_fail(err, CDM_EINPUT, "TLS key '%s' does not match certificate '%s'",
				o->tls_key, o->tls_cert);
	}
	if (SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1)
		return file_fail("CA", o->tls_ca, err);
	int own = cert_party(SSL_CTX_get0_certificate(ctx));
	if (own < 0)
		return cdm_fail(err, CDM_EINPUT,
				"TLS certificate '%s' names %s party (party0, party1, party2)", o->tls_cert,
				own == -1 ? "no" : "more than one");
	if (own != o->id)
		return cdm_fail(err, CDM_EINPUT, "TLS certificate '%s' is for party%d, but this is party %d",
				o->tls_cert, own, o->id);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read whole socket buffers, not a record header and then its body:
	 * half the syscalls for small messages. Safe because net.c always
	 * reads before it polls, so nothing waits unseen in OpenSSL's buffer. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_num_tickets(ctx, 0); /* no resumption: nothing to send after the handshake */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return 0;
}

int net_tls_attach(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	SSL *ssl = SSL_new(net->ssl_ctx);
	BIO *bio = BIO_new(bio_method);
	struct sock_bio *sb = calloc(1, sizeof *sb);
	c->stage = malloc(NET_HDR + NET_STAGE);
	if (!ssl || !bio || !sb || !c->stage) {
		SSL_free(ssl);
		BIO_free(bio);
		free(sb);
		return cdm_fail(err, CDM_ENOMEM, "%s: cannot set up TLS", c->name);
	}
	sb->fd = c->fd;
	BIO_set_data(bio, sb);
	BIO_set_init(bio, 1);
	SSL_set_bio(ssl, bio, bio); /* the SSL owns the BIO, the BIO owns sb */
	if (c->accepted)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	c->ssl = ssl;
	return 0;
}

/* After the handshake: does the certificate name the party we expect? */
static int check_peer(cdm_net *net, int p, struct cdm_err *err)
{
	struct net_chan *c = &net->ch[p];
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	if (!cert)
		return cdm_fail(err, CDM_ENET, "%s: TLS handshake failed: no peer certificate", c->name);
	int who = cert_party(cert);
	if (who < 0)
		return cdm_fail(err, CDM_ENET,
				"%s: TLS handshake failed: certificate names %s party (party0, party1, party2)",
				c->name, who == -1 ? "no" : "more than one");
	if (!c->accepted && who != p)
		return cdm_fail(err, CDM_ENET,
				"%s: TLS handshake failed: certificate is for party%d, expected party%d",
				c->name, who, p);
	if (c->accepted && who <= net->id)
		return cdm_fail(err, CDM_ENET,
				"%s: TLS handshake failed: certificate is for party%d, expected %s", c->name,
				who, net->id == 0 ? "party1 or party2" : "party2");
	c->cert_party = who;
	return 0;
}

int net_tls_handshake(cdm_net *net, int64_t deadline, struct cdm_err *err)
{
	int done[CDM_PARTIES] = {0};
	done[net->id] = 1;
	for (;;) {
		struct pollfd pf[CDM_PARTIES];
		int np = 0, last = -1;
		for (int p = 0; p < CDM_PARTIES; p++) {
			struct net_chan *c = &net->ch[p];
			if (done[p])
				continue;
			c->want = 0;
			ERR_clear_error();
			int ret = SSL_do_handshake(c->ssl);
			if (ret == 1) {
				done[p] = 1;
				CDM_TRY(check_peer(net, p, err));
				continue;
			}
			long rc = tls_status(net, p, ret, err);
			if (rc < 0)
				return (int)rc;
			pf[np].fd = c->fd;
			pf[np].events = c->want;
			pf[np++].revents = 0;
			last = p;
		}
		if (np == 0)
			return 0;
		int64_t left = deadline - net_now_ms();
		if (left <= 0)
			return cdm_fail(err, CDM_ENET, "%s: TLS handshake timed out", net->ch[last].name);
		if (poll(pf, (nfds_t)np, (int)left) < 0 && errno != EINTR)
			return cdm_fail(err, CDM_ENET, "TLS handshake: poll: %s", strerror(errno));
	}
}

void net_tls_free_chan(struct net_chan *c)
{
	if (!c->ssl)
		return;
	/* Best effort close_notify; the socket is non-blocking, so this
	 * never waits. */
	ERR_clear_error();
	if (SSL_is_init_finished(c->ssl))
		SSL_shutdown(c->ssl);
	ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
}

void net_tls_free_ctx(void *ctx)
{
	SSL_CTX_free(ctx);
}
