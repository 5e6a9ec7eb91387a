/*
 * bench/netns: an emulated network for three party processes -- three
 * network namespaces joined pairwise by veth links whose every direction is
 * shaped to a rate and a one-way delay (cdm-bench model --net lan|wan).
 *
 * Owns: creating and deleting the namespaces cdmbench-<pid>-{0,1,2}, the
 * links, the shaping, the argv prefix that runs a command inside namespace
 * i (`ip netns exec NAME`), each party's --peers list, and the delay relays
 * (below). Does not own: the party processes (lib/bench/model.c).
 *
 * Addresses exist only inside the namespaces: party i listens on
 * 10.77.0.(i+1) (on the namespace's own lo); link (i,j) is a veth pair with
 * 10.78.L.1/30 and 10.78.L.2/30 (L = 0, 1, 2 for links 01, 02, 12), and a
 * host route in each namespace sends a peer's address over its link. No
 * address, route or interface is added to the caller's namespace, so no
 * traffic leaves the machine.
 *
 * Shaping. Preferred: `tc qdisc ... netem delay RTT/2 rate R` on both ends
 * of every link. Kernels without sch_netem (this machine's) get `tbf rate R`
 * on every link end for the bandwidth, and the delay is added in user space
 * by one relay process per link, running in the dialing party's namespace
 * (party i dials every j < i): party i's --peers names 127.0.0.1:<relay>
 * for j, and the relay holds each chunk it forwards, in both directions,
 * for RTT/2 before writing it on. TCP between relay and peer then sees no
 * delay (no slow-start penalty), so relay figures are slightly optimistic
 * for bulk transfers; the per-round cost (the dominant one here) is exact
 * up to scheduling jitter. cdm_netns_delay_mode says which was used.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2 (ip, tc).
 * Cleanup: cdm_netns_free deletes the namespaces (which removes the links)
 * and kills the relays; cdm_netns_sweep removes namespaces left behind by a
 * killed run (cdmbench-<pid>-* whose pid is gone).
 * Thread-safety: one owner; not async-signal-safe (callers defer teardown
 * from a signal handler to their main loop).
 */
#ifndef CDM_BENCH_NETNS_H
#define CDM_BENCH_NETNS_H

#include <stddef.h>

#include "../base/base.h"

#define CDM_NETNS_PORT 7100 /* party i listens on CDM_NETNS_PORT + i */

typedef struct cdm_netns cdm_netns;

/* Check that we are root and that `ip` and `tc` are on PATH; `what` names
 * the feature in the message ("--net lan needs root (network namespaces)"). */
int cdm_netns_check(const char *what, struct cdm_err *err);

/* Create the namespaces and links with rate (Mbit/s, > 0) and round-trip
 * time (ms, >= 0) per link. On failure everything created is removed. */
int cdm_netns_new(cdm_netns **out, double rate_mbit, double rtt_ms, struct cdm_err *err);
/* Kill relays, delete namespaces; accepts NULL. */
void cdm_netns_free(cdm_netns *n);

/* Remove namespaces cdmbench-<pid>-* of processes that no longer exist. */
void cdm_netns_sweep(void);

/* "netem" or "relay" (see above). */
const char *cdm_netns_delay_mode(const cdm_netns *n);
const char *cdm_netns_name(const cdm_netns *n, int party);

/* Prefix argv (up to 4 entries, then NULL-terminated list continues with
 * the caller's) to run inside party's namespace: fills pre[0..3] and
 * returns the count. */
int cdm_netns_exec_prefix(const cdm_netns *n, int party, const char **pre);

/* The --peers list party `party` must use (relay addresses for the peers
 * it dials when delays are relayed). */
int cdm_netns_peers(const cdm_netns *n, int party, char *buf, size_t size,
		    struct cdm_err *err);

/* Start the relays (relay mode; a no-op for netem). Call before the parties
 * of each run: a relay serves one connection and exits. */
int cdm_netns_start_relays(cdm_netns *n, struct cdm_err *err);
/* Stop the relays of a run (kill and reap; no-op if none). */
void cdm_netns_stop_relays(cdm_netns *n);

#endif
