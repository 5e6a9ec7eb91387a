/*
 * mpc_impl.h: internals shared by the files of lib/mpc (not a public
 * header): the session struct, the pairwise streams, small-word packing and
 * the helpers every protocol uses.
 *
 * Roles. The helper-assisted protocols (truncation, comparison) use a fixed
 * role assignment: P0 and P1 hold a 2-out-of-2 additive sharing and run the
 * data-dependent exchanges; P2 is the dealer whose messages never depend on
 * data. Streams: P0-P1 share seed k1, P1-P2 share k2, P2-P0 share k0.
 */
#ifndef CDM_MPC_IMPL_H
#define CDM_MPC_IMPL_H

#include "mpc.h"

struct cdm_mpc {
	int id;                      /* this party: 0, 1, 2 */
	int frac;                    /* fixed-point fraction bits F */
	cdm_net *net;                /* borrowed transport */
	cdm_prg zero_self;           /* PRG(k_i, "zero"): + side of the zero sharing */
	cdm_prg zero_next;           /* PRG(k_{i+1}, "zero"): - side */
	cdm_prg pair_prev;           /* PRG(k_i, "pair"): shared with party i-1 */
	cdm_prg pair_next;           /* PRG(k_{i+1}, "pair"): shared with party i+1 */
	cdm_prg common;              /* known to all three parties */
	struct cdm_cost cost[CDM_MPC_MAX_LABELS]; /* per-label totals */
	size_t ncost;                /* labels in use */
	size_t cur;                  /* label charged now */
	double t0;                   /* time the current label started */
	struct cdm_net_stats s0;     /* net counters when it started */
};

static inline int mpc_next(const cdm_mpc *m) { return (m->id + 1) % CDM_PARTIES; }
static inline int mpc_prev(const cdm_mpc *m) { return (m->id + 2) % CDM_PARTIES; }

/* The stream this party shares with `peer` (peer != own id). Both ends make
 * the same sequence of calls on it, which keeps them in lockstep. */
static inline cdm_prg *mpc_pair(cdm_mpc *m, int peer)
{
	return peer == mpc_next(m) ? &m->pair_next : &m->pair_prev;
}

static inline uint64_t mpc_mask(int bits)
{
	return bits >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
}

/* Packed size of n words of `bits` bits each (bit stream, LSB first). */
static inline size_t mpc_packed_len(size_t n, int bits)
{
	return (n * (size_t)bits + 7) / 8;
}
/* Pack the low `bits` bits of each of n words into out[mpc_packed_len]. */
void mpc_pack(uint8_t *out, const uint64_t *in, size_t n, int bits);
/* Inverse of mpc_pack (high bits of each output word are zero). */
void mpc_unpack(uint64_t *out, const uint8_t *in, size_t n, int bits);

/* Make `out` an n-element sharing: allocate it when zeroed, check its size
 * otherwise. `what` names the operation for the message. */
int mpc_out(cdm_shr *out, size_t n, const char *what, struct cdm_err *err);
int mpc_same(const cdm_shr *x, const cdm_shr *y, const char *what, struct cdm_err *err);

/* alpha[k] += PRG(k_i) - PRG(k_{i+1}): a fresh 3-of-3 sharing of zero. */
int mpc_zero_add(cdm_mpc *m, uint64_t *z, size_t n, struct cdm_err *err);

/* Local part of x*y: z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + alpha_i,
 * a 3-of-3 additive sharing of the product. */
int mpc_mul_local(cdm_mpc *m, uint64_t *z, const cdm_shr *x, const cdm_shr *y,
		  struct cdm_err *err);

/* 3-of-3 additive z_i -> replicated: send z_i to the previous party, receive
 * z_{i+1} from the next. One round, 8 bytes per element per party. `z` may
 * be out->a. */
int mpc_reshare(cdm_mpc *m, cdm_shr *out, const uint64_t *z, struct cdm_err *err);

/* 2-of-2 additive between P0 (y = Y0) and P1 (y = Y1) -> replicated sharing
 * of Y0 + Y1 in out (P2 passes y = NULL). One round: P0 and P1 each send 8
 * bytes per element to P2. y may alias out->a or out->b. */
int mpc_2of2_to_rss(cdm_mpc *m, cdm_shr *out, const uint64_t *y, size_t n,
		    struct cdm_err *err);

/* Exact truncation by `shift` (1..62) bits of a value |x| < 2^62 given as
 *   plain mode (fused = 0): P0 passes X0, P1 passes X1 (x = X0 + X1),
 *     P2 passes NULL;
 *   fused mode (fused = 1): every party passes its z_i of a 3-of-3
 *     additive sharing (x = z0 + z1 + z2); P2 sends z2 to P1 first.
 * into the replicated `out` (n elements, allocated). x is used as scratch.
 * Rounds: 2 plain, 3 fused. See trunc.c for the protocol and its proof. */
int mpc_trunc_core(cdm_mpc *m, cdm_shr *out, uint64_t *x, size_t n, int shift, int fused,
		   struct cdm_err *err);

/* One round carrying x and, appended per peer and direction, the
 * ride-along transfer e (NULL: x alone). Both ends must append the same
 * ride-along, so the receiver splits at the lengths it expects. */
int mpc_round_with(cdm_mpc *m, const struct cdm_xfer *x, const struct cdm_xfer *e,
		   struct cdm_err *err);

/* z[k] = sum_t (x_i y_i + x_i y_{i+1} + x_{i+1} y_i) over the `terms`
 * blocks of x and y: the local 3-of-3 share of a dot product (no zero
 * sharing added). z holds x->n / terms words. */
void mpc_dot_local(const cdm_shr *x, const cdm_shr *y, size_t terms, uint64_t *z);

/* A fused truncation (mpc_trunc_core, fused mode) cut into steps, so its
 * messages can ride along another protocol's rounds (cmp.c):
 *   start: draw the randomness (before the host protocol draws any);
 *          r1 = P2's z2 | c1 to P1 (round 1 of the host);
 *   mid:   after round 1 (P1 adds z2); r2 = the d/e exchange of P0, P1;
 *   end:   after round 2: X holds the 2-of-2 result (P0, P1), to be
 *          converted with the host's 2-of-2 -> replicated round.
 * The host sends r1 and r2 with rounds that move data in the same
 * directions (P2 -> P1; P0 <-> P1). */
struct mpc_tjob {
	size_t n;
	int s;
	uint64_t *X;          /* P0, P1: z on entry, the 2-of-2 share on exit */
	uint64_t *rnd;        /* P0: u, c0, e; P1: v, e, c1 (n words each) */
	uint8_t *pk;          /* packed messages */
	struct cdm_xfer r1, r2;
};
int mpc_tjob_start(cdm_mpc *m, struct mpc_tjob *j, uint64_t *z, size_t n, int shift,
		   struct cdm_err *err);
void mpc_tjob_mid(cdm_mpc *m, struct mpc_tjob *j);
void mpc_tjob_end(cdm_mpc *m, struct mpc_tjob *j);
void mpc_tjob_free(struct mpc_tjob *j);

#endif
