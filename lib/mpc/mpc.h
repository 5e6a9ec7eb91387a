/*
 * mpc: 2-out-of-3 replicated secret sharing over Z_2^64 (ABY3 layout) and
 * its protocols: input, reveal, linear operations, multiplication, exact
 * truncation, matrix multiplication, comparison, bit injection, select,
 * ReLU and max.
 *
 * Owns: struct cdm_mpc (one party's session: channels, pairwise PRGs,
 * fixed-point parameters, per-layer cost counters) and cdm_shr (a shared
 * vector). Does not own: transport details (lib/net), nonlinear
 * approximations (lib/nonlin).
 *
 * Layout. x = x0 + x1 + x2 mod 2^64; party i holds (x_i, x_{i+1}) as
 * (s->a[k], s->b[k]) for element k. Every protocol is vectorised: one call
 * handles a whole tensor in a fixed number of rounds, one message per peer
 * per round.
 *
 * Correlated randomness. At session start each party picks a seed k_i,
 * sends it to the previous party, and so holds (k_i, k_{i+1}); zero-sharings
 * come from PRG(k_i) - PRG(k_{i+1}). Pairs also derive two-party streams
 * (P_i with P_{i+1}) and a common stream known to all three. All parties
 * make the same sequence of calls, which keeps the streams in lockstep.
 *
 * Truncation is exact to 1 LSB for every input |x| < 2^62 (no rare large
 * error): see cdm_mpc_trunc. Comparisons are exact for inputs of
 * -2^(CDM_CMP_BITS-1) <= x < 2^(CDM_CMP_BITS-1) ring units
 * (|v| < 2^(CDM_CMP_BITS-1-F) reals).
 *
 * Outputs. Operations that return a status accept either a zeroed cdm_shr
 * (they allocate it) or one that already holds the right number of
 * elements; anything else is CDM_EINPUT. The void operations need `out`
 * allocated with x->n elements. Outputs may alias inputs everywhere.
 * Bad arguments are detected before any communication, identically on the
 * three parties, so a bad call never leaves peers waiting.
 *
 * Cost per element, all three parties together, frame headers aside
 * (F = 20, CDM_CMP_BITS = 36; asserted in tests/unit/test_mpc.c):
 *   mul, select   24 B     1 round
 *   trunc         23.5 B   2 rounds   (3 x 20-bit words + 2 x 8 B)
 *   mul_trunc     31.5 B   3 rounds   (matmul with shift: same per output;
 *                                      dot_trunc: same per output whatever
 *                                      the number of terms)
 *   ltz, lt       57 B     5 rounds   (P0, P1 14.9 B each, P2 27.3 B)
 *   relu          81 B     6 rounds
 *   max_rows      rows longer than 8: a binary first layer (relu's cost
 *                 per pair, 6 rounds); then per group of four columns 6 lt
 *                 + 8 products + 1 dot output, 7 rounds per layer while
 *                 more than two columns are left; lt + select for a pair
 * Roles are fixed: P2 is the dealer of truncation and comparison (sends
 * less, computes the correlated randomness); P0 and P1 do the exchanges.
 *
 * Memory: the first cdm_mpc_new of a process raises glibc's trim and mmap
 * thresholds (mallopt) so that the tensor-sized buffers every protocol
 * allocates are reused instead of being returned to the kernel and
 * page-faulted back each call (a third of the CPU time otherwise).
 *
 * Thread-safety: a cdm_mpc belongs to one thread.
 */
#ifndef CDM_MPC_H
#define CDM_MPC_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../net/net.h"
#include "../prg/prg.h"

/* A replicated-shared vector of n ring elements; this party's two
 * components. Memory is owned by the cdm_shr (cdm_shr_free). */
typedef struct cdm_shr {
	size_t n;
	uint64_t *a; /* x_i     [n] */
	uint64_t *b; /* x_{i+1} [n] */
} cdm_shr;

/* A Boolean-shared vector of bits (XOR sharing, same replicated layout),
 * one bit per element stored in the low bit of a byte. */
typedef struct cdm_bshr {
	size_t n;
	uint8_t *a;
	uint8_t *b;
} cdm_bshr;

/* Cost counters, by layer label (conv, groupnorm, silu, ...). */
#define CDM_MPC_MAX_LABELS 32
struct cdm_cost {
	char label[24];
	double seconds;
	uint64_t bytes_sent;
	uint64_t rounds;
};

typedef struct cdm_mpc cdm_mpc;

struct cdm_mpc_opts {
	int frac_bits;        /* 0 = CDM_FRAC_BITS_DEFAULT */
	const uint8_t *seed;  /* test mode: derive all seeds from this (16 B); NULL = random */
};

/* Start a session over an established transport: exchanges the pairwise
 * seeds (one round). The cdm_mpc borrows net; free net after the mpc. */
int cdm_mpc_new(cdm_mpc **out, cdm_net *net, const struct cdm_mpc_opts *opts,
		struct cdm_err *err);
void cdm_mpc_free(cdm_mpc *m);

int cdm_mpc_id(const cdm_mpc *m);
int cdm_mpc_frac(const cdm_mpc *m);
cdm_net *cdm_mpc_net(cdm_mpc *m);
/* Common stream all three parties share (public randomness). */
cdm_prg *cdm_mpc_common_prg(cdm_mpc *m);

/* Cost accounting: subsequent traffic, rounds and time are charged to
 * `label` until the next call. cdm_mpc_costs lists the totals. */
void cdm_mpc_set_label(cdm_mpc *m, const char *label);
size_t cdm_mpc_costs(const cdm_mpc *m, struct cdm_cost *out, size_t max);

/* ---- shares ------------------------------------------------------------ */
int cdm_shr_new(cdm_shr *s, size_t n, struct cdm_err *err); /* zeroed */
void cdm_shr_free(cdm_shr *s);                                /* accepts zeroed */
int cdm_shr_copy(cdm_shr *dst, const cdm_shr *src, struct cdm_err *err);

/* ---- input and output -------------------------------------------------- */
/* `owner` holds the plaintext ring vector `x` (ignored elsewhere); all three
 * obtain shares of it. One round. */
int cdm_mpc_input(cdm_mpc *m, int owner, const uint64_t *x, size_t n, cdm_shr *out,
		  struct cdm_err *err);
/* Public value -> sharing without communication. */
void cdm_mpc_public(cdm_mpc *m, const uint64_t *x, cdm_shr *out);
/* Reveal to all three parties. One round. */
int cdm_mpc_reveal(cdm_mpc *m, const cdm_shr *x, uint64_t *out, struct cdm_err *err);
/* Reveal to party `to` only (others pass out = NULL). One round. */
int cdm_mpc_reveal_to(cdm_mpc *m, int to, const cdm_shr *x, uint64_t *out,
		      struct cdm_err *err);

/* ---- local linear operations (no communication) ------------------------ */
void cdm_mpc_add(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y);
void cdm_mpc_sub(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y);
void cdm_mpc_add_const(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c);
/* Multiply by a public ring integer (no truncation). */
void cdm_mpc_mul_int(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c);
/* Multiply elementwise by a public ring vector (no truncation). */
void cdm_mpc_mul_pub(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const uint64_t *c);

/* ---- multiplication and truncation -------------------------------------- */
/* out = x*y elementwise, no truncation. One round, 8 bytes per element per
 * party. */
int cdm_mpc_mul(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		struct cdm_err *err);
/* out = x / 2^shift (0 <= shift <= 62) for |x| < 2^62: always floor or
 * ceil of the exact quotient (exact when 2^shift divides x), chosen at
 * random with the probability of stochastic rounding, so the error is
 * below 1 LSB and unbiased. Never a large error. Two rounds. */
int cdm_mpc_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int shift,
		  struct cdm_err *err);
/* out = (x*y) / 2^F as cdm_mpc_trunc, with the truncation fused into the
 * multiplication (3 rounds, 31.5 B per element instead of 24 + 23.5). */
int cdm_mpc_mul_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		      struct cdm_err *err);
/* Inner products with one fused truncation: x and y hold `terms` blocks of
 * n = x->n / terms elements; out[k] = (sum_t x[t][k] * y[t][k] + add[k])
 * >> shift (add may be NULL; shift 0 = no truncation, 0..62). The cost is
 * that of ONE product whatever `terms` is: shift 0 as cdm_mpc_mul, else as
 * cdm_mpc_mul_trunc. Truncation as cdm_mpc_trunc (|sum| < 2^62). */
int cdm_mpc_dot_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		      size_t terms, const cdm_shr *add, int shift, struct cdm_err *err);
/* Fixed-point multiply by public reals c[i] (encoded with F bits), then
 * truncate: local multiply + one truncation. */
int cdm_mpc_mul_pub_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const uint64_t *c,
			  struct cdm_err *err);
/* C[m x n] = (A[m x k] * B[k x n]) >> shift, batched over `batch` independent
 * products stored back to back. Both secret. One truncation per output.
 * shift = 0: no truncation. */
int cdm_mpc_matmul(cdm_mpc *m, cdm_shr *c, const cdm_shr *a, const cdm_shr *b, size_t batch,
		   size_t rows, size_t inner, size_t cols, int shift, struct cdm_err *err);
/* Same with a public right operand B (weights known to all). */
int cdm_mpc_matmul_pub(cdm_mpc *m, cdm_shr *c, const cdm_shr *a, const uint64_t *b,
		       size_t rows, size_t inner, size_t cols, int shift, struct cdm_err *err);

/* ---- comparison and selection ------------------------------------------ */
/* out = [x < 0] as an arithmetic sharing of 0/1 (integer, not fixed point).
 * Exact for -2^(CDM_CMP_BITS-1) <= x < 2^(CDM_CMP_BITS-1); outside that
 * range the answer is that of x mod 2^CDM_CMP_BITS. All elements share the
 * same 5 rounds (protocol in cmp.c). */
int cdm_mpc_ltz(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
/* out = [x < 0] as cdm_mpc_ltz and, in the same 5 rounds, pout = (sum_t
 * px[t] py[t]) >> shift as cdm_mpc_dot_trunc (terms blocks, shift 1..62):
 * a product that does not depend on the comparison costs bytes but no
 * round. Same results and guarantees as the two calls apart. */
int cdm_mpc_ltz_dot_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, cdm_shr *pout,
			  const cdm_shr *px, const cdm_shr *py, size_t terms, int shift,
			  struct cdm_err *err);
/* out = [x < y] as arithmetic 0/1. */
int cdm_mpc_lt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
	       struct cdm_err *err);
/* out = bit ? x : y, with bit an arithmetic 0/1 sharing. */
int cdm_mpc_select(cdm_mpc *m, cdm_shr *out, const cdm_shr *bit, const cdm_shr *x,
		   const cdm_shr *y, struct cdm_err *err);
int cdm_mpc_relu(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err);
/* Row maxima of a rows x cols matrix: a binary first layer for rows
 * longer than 8 (lt + select on column pairs), then tournament layers that
 * reduce groups of four columns (all six pairs compared in one lt call,
 * the winner picked by products of the outcomes: 7 rounds), a binary layer
 * when two columns are left; all rows in the same rounds (196 columns:
 * 6 + 3 x 7 + 6 = 33 rounds instead of 8 x 6). Exact when every two
 * elements of a row differ by less than 2^(CDM_CMP_BITS-1) ring units
 * (beyond, a layer may return a sum of elements or 0). */
int cdm_mpc_max_rows(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, size_t rows, size_t cols,
		     struct cdm_err *err);

#endif
