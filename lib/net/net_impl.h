/*
 * net_impl.h: internals shared by the files of lib/net (not a public header).
 *
 * A cdm_net holds one channel per peer. A channel is a connected,
 * non-blocking stream socket, optionally wrapped in a TLS session; the
 * round engine in net.c moves framed messages over it and is the same for
 * socketpairs (in-process mode), TCP and TLS.
 *
 * Frame layout (32 bytes, little endian, then `len` payload bytes):
 *   u32 magic "CDM1" | u32 flags | u64 session | u64 seq | u64 len
 * seq counts frames per direction from 0; flags is 0 for data frames and
 * NET_FLAG_HELLO for the one hello frame exchanged when connecting (which
 * carries session 0 and does not advance seq).
 */
#ifndef CDM_NET_IMPL_H
#define CDM_NET_IMPL_H

#include "net.h"

#define NET_MAGIC 0x314d4443u /* "CDM1" read as a little-endian u32 */
#define NET_HDR 32
#define NET_FLAG_HELLO 1u
#define NET_VERSION 1u
/* TLS small-message path: header and payload up to this size are copied
 * into one buffer so they travel in one record and one syscall. */
#define NET_STAGE 16384

struct net_chan {
	int fd;               /* -1 for this party's own slot */
	void *ssl;            /* SSL * when TLS is on, else NULL */
	uint64_t send_seq;    /* next data frame number to send */
	uint64_t recv_seq;    /* next data frame number expected */
	/* current round; out_total/in_total = 0 means nothing to move */
	const uint8_t *out;   /* payload to send */
	size_t out_total;     /* header + payload */
	size_t out_done;
	uint8_t *in;          /* where the payload goes */
	size_t in_total;
	size_t in_done;
	uint32_t in_flags;    /* flags the incoming frame must carry */
	int in_checked;       /* header of the incoming frame verified */
	int staged;           /* TLS: the frame was copied into stage */
	uint8_t *stage;       /* TLS: NET_HDR + NET_STAGE bytes */
	char name[96];        /* "peer 2", or "peer from 10.0.0.3:5123" while unknown */
	int cert_party;       /* TLS: the party the peer's certificate names */
	int accepted;         /* we accepted this connection (TLS server side) */
	short want;           /* poll events this channel waits for */
	uint8_t out_hdr[NET_HDR];
	uint8_t in_hdr[NET_HDR];
};

struct cdm_net {
	int id;
	uint64_t session;
	int timeout_ms;
	struct net_chan ch[CDM_PARTIES];
	struct cdm_net_stats stats;
	void *ssl_ctx;        /* SSL_CTX * when TLS is on */
	int connecting;       /* in cdm_net_connect: TLS errors are handshake errors */
	char warning[200];
};

/* net.c */
int net_alloc(cdm_net **out, int id, struct cdm_err *err);
void net_encode_hdr(uint8_t h[NET_HDR], uint32_t flags, uint64_t session, uint64_t seq,
		    uint64_t len);
/* Run the poll loop until every channel's current job is done. */
int net_run(cdm_net *net, struct cdm_err *err);
/* Set up channel p to send one frame / expect one frame. */
void net_post_send(cdm_net *net, int p, uint32_t flags, uint64_t seq, const void *buf,
		   size_t len);
void net_post_recv(cdm_net *net, int p, uint32_t flags, void *buf, size_t len);
void net_tune_socket(int fd, int tcp);
int64_t net_now_ms(void);

int net_closed_err(cdm_net *net, int p, struct cdm_err *err);

/* tls.c (TLS session I/O: > 0 bytes moved, 0 would block (sets want), < 0 error) */
long net_tls_write(cdm_net *net, int p, const void *buf, size_t len, struct cdm_err *err);
long net_tls_read(cdm_net *net, int p, void *buf, size_t len, struct cdm_err *err);
void net_tls_free_chan(struct net_chan *c);
/* Load certificate, key and CA into net->ssl_ctx (TLS 1.3 only). */
int net_tls_init(cdm_net *net, const struct cdm_net_opts *o, struct cdm_err *err);
/* Wrap channel p's socket; server side when c->accepted. */
int net_tls_attach(cdm_net *net, int p, struct cdm_err *err);
/* Run all handshakes at once until done or deadline (ms, net_now_ms clock);
 * then check that each certificate names a party: channel p must be
 * party p unless it was accepted (then any party above net->id). */
int net_tls_handshake(cdm_net *net, int64_t deadline, struct cdm_err *err);
void net_tls_free_ctx(void *ctx);

#endif
