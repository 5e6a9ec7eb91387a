/*
 * net: the three-party transport -- one connection per pair of parties,
 * framed messages, round-based full-duplex exchange, byte/round counters.
 *
 * Owns: connecting (TCP with retry and backoff, or TLS 1.3 with mutual
 * certificate authentication), an in-process mode for unit tests
 * (socketpairs between three threads -- the same code path as TCP), the
 * frame header (magic, session id, sequence number, length) and its checks,
 * timeouts, and counters. Does not own: what the bytes mean (lib/mpc).
 *
 * The round contract. cdm_net_round() sends one message to each peer with a
 * non-empty send buffer and receives one message from each peer with a
 * non-empty receive buffer, all at once (poll loop over non-blocking
 * sockets), so two peers sending hundreds of MB to each other never
 * deadlock. Both sides know every length in advance: a received frame whose
 * length, session id or sequence number differs from the expected one is a
 * CDM_EPROTO error; a closed peer, a short read or no progress for longer
 * than the timeout is CDM_ENET. Progress is a frame completed in either
 * direction or 64 KiB moved, so a peer trickling bytes without completing
 * a frame times out too. Zero-length messages are not sent at all.
 *
 * Wire format: each message is one frame, a 32-byte little-endian header
 *   u32 magic "CDM1" | u32 flags (0) | u64 session | u64 seq | u64 length
 * followed by the payload; seq counts frames per direction from 0. Counters
 * count header + payload bytes (not TCP/TLS overhead); `rounds` counts
 * cdm_net_round calls that moved anything.
 *
 * Thread-safety: a cdm_net belongs to one thread.
 */
#ifndef CDM_NET_H
#define CDM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_PARTIES 3
#define CDM_NET_TIMEOUT_MS_DEFAULT 60000

struct cdm_net_opts {
	int id;                        /* this party: 0, 1 or 2 */
	const char *host[CDM_PARTIES]; /* peer hosts (own entry: bind address) */
	int port[CDM_PARTIES];         /* listening port of each party */
	const char *tls_cert;          /* PEM; TLS when all three are set */
	const char *tls_key;
	const char *tls_ca;
	int timeout_ms;                /* per-round no-progress limit; 0 = default */
	int connect_timeout_ms;        /* give up connecting after this; 0 = 120 s */
	uint64_t session;              /* session id in every frame; 0 = agree one */
	int quiet;                     /* no warning for plain TCP off loopback */
};

struct cdm_net_stats {
	uint64_t bytes_sent;   /* payload + frame headers sent by this party */
	uint64_t bytes_recv;
	uint64_t rounds;       /* cdm_net_round calls that moved any data */
	uint64_t messages_sent;
};

typedef struct cdm_net cdm_net;

/* Connect party opts->id to the other two (listen for higher ids, connect to
 * lower ids, retrying with backoff). With TLS, each side checks that the
 * peer's certificate chains to tls_ca and names the expected party
 * (CN or SAN "party0", "party1", "party2"). */
int cdm_net_connect(cdm_net **out, const struct cdm_net_opts *opts, struct cdm_err *err);

/* In-process mode: three connected endpoints over socketpairs, for three
 * threads of one process (unit tests, cdm-bench ops). */
int cdm_net_local(cdm_net *out[CDM_PARTIES], struct cdm_err *err);

void cdm_net_free(cdm_net *net); /* closes the connections; accepts NULL */

int cdm_net_id(const cdm_net *net);

/* One round: per peer p (index = party id; own index ignored) send
 * send_len[p] bytes from send[p] and receive exactly recv_len[p] bytes into
 * recv[p]. */
struct cdm_xfer {
	const void *send[CDM_PARTIES];
	size_t send_len[CDM_PARTIES];
	void *recv[CDM_PARTIES];
	size_t recv_len[CDM_PARTIES];
};
int cdm_net_round(cdm_net *net, const struct cdm_xfer *x, struct cdm_err *err);

/* Convenience: send to next (id+1) and receive from previous (id-1), the
 * shape of a replicated-sharing reshare. */
int cdm_net_pass(cdm_net *net, const void *to_next, void *from_prev, size_t len,
		 struct cdm_err *err);

void cdm_net_get_stats(const cdm_net *net, struct cdm_net_stats *out);

/* Session id carried in every frame (agreed when connecting). */
uint64_t cdm_net_session(const cdm_net *net);

/* Silence limit for later rounds, in ms (<= 0: the 60 s default). */
void cdm_net_set_timeout(cdm_net *net, int timeout_ms);

/* A warning the tool should print (plain TCP to a non-loopback address),
 * or NULL. The library itself never prints. */
const char *cdm_net_warning(const cdm_net *net);

/* Test hook: write len >= 32 raw bytes to a peer, the first 32 taking the
 * place of a frame header (so tests can forge bad frames). Counts like a
 * frame. Not for protocol code. */
int cdm_net_send_raw(cdm_net *net, int peer, const void *buf, size_t len, struct cdm_err *err);

#endif
