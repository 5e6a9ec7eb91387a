/* mpc: exact truncation, fused multiply-truncate and matrix products.
 *
 * Truncation protocol (P2 is the dealer; s = shift):
 *
 *  1. A 2-of-2 sharing x = X0 + X1 mod 2^64: X0 = x0 + x1 (P0 holds both),
 *     X1 = x2 (P1). Fused after a product: X0 = z0, X1 = z1 + z2 with z2
 *     sent by P2 (one message instead of a reshare).
 *  2. P0 adds K = 2^62 - 1: x' = x + K lies in [0, 2^63) for |x| < 2^62.
 *     With a = MSB(X0), b = MSB(X1) the wrap of X0 + X1 over 2^64 is
 *     w = a OR b: both set -> the sum is >= 2^64; neither -> < 2^64;
 *     exactly one -> the sum is >= 2^63 while x' < 2^63, so it wrapped.
 *  3. ab by a Beaver product over Z_(2^s): P2 draws u, c0 (stream with P0)
 *     and v (stream with P1) and sends c1 = uv - c0 to P1. P0 opens
 *     d = a - u, P1 opens e = b - v (one round, s bits each way).
 *     ab = (d + u)(e + v) = [de + ue + c0]_P0 + [dv + c1]_P1  (mod 2^s).
 *  4. floor(X0/2^s) + floor(X1/2^s) = floor((X0 + X1)/2^s) - c with the
 *     low-bit carry c in {0, 1}, and X0 + X1 = x' + w 2^64, so
 *       Y0 = (X0 >> s) - a 2^(64-s) + [ab]_0 2^(64-s) - (2^(62-s) - 1)
 *       Y1 = (X1 >> s) - b 2^(64-s) + [ab]_1 2^(64-s)
 *     sum to floor(x'/2^s) - c - (2^(62-s) - 1). Writing K = (2^62 - 2^s)
 *     + (2^s - 1) with the first part a multiple of 2^s, this is
 *     floor((x + 2^s - 1)/2^s) - c = ceil(x/2^s) - c: always floor(x/2^s)
 *     or ceil(x/2^s), exact for multiples of 2^s (their low bits are
 *     2^s - 1, which cannot carry), for every |x| < 2^62. Over the share
 *     randomness c = 1 with probability 1 - frac(x/2^s) (for x not a
 *     multiple), so the result is an unbiased stochastic rounding. Only
 *     ab mod 2^s matters because it is multiplied by 2^(64-s).
 *  5. Back to replicated (mpc_2of2_to_rss), one round.
 *
 * Privacy: P0 sees e = b - v and P1 sees d, c1, all uniform mod 2^s; P2 sees
 * only values masked by P0-P1 stream randomness. The output is a fresh
 * sharing. Per element (small words bit-packed, s bits each):
 *   trunc:     round 1 P0->P1 s bits, P1->P0 s bits, P2->P1 s bits;
 *              round 2 P0->P2 and P1->P2 8 bytes each.       2 rounds
 *   mul_trunc: round 1 P2->P1 8 bytes + s bits (c1 rides along); then the
 *              d/e and y rounds as trunc.                      3 rounds
 */
#include "mpc_impl.h"

#include <string.h>

#include "../ring/ring.h"

/* Run a status-returning call; on failure jump to the local `done` label. */
#define CDM_TRY_FREE(expr)                                                    \
	do {                                                                  \
		if ((expr) < 0)                                               \
			goto done;                                            \
	} while (0)

/* P2's part: deal c1 (and in fused mode first hand z2 to P1). */
static int trunc_dealer(cdm_mpc *m, cdm_shr *out, const uint64_t *z2, size_t n, int s,
			int fused, struct cdm_err *err)
{
	size_t plen = mpc_packed_len(n, s), zlen = fused ? n * 8 : 0;
	uint64_t *uc = cdm_alloc(n, 24, err);
	uint8_t *msg = uc ? cdm_alloc(zlen + plen, 1, err) : NULL;
	if (!msg) {
		cdm_free(uc);
		return CDM_ENOMEM;
	}
	uint64_t *u = uc, *c0 = uc + n, *v = uc + 2 * n, mask = mpc_mask(s);
	cdm_prg_u64(mpc_pair(m, 0), uc, 2 * n); /* u, c0 as P0 draws them */
	cdm_prg_u64(mpc_pair(m, 1), v, n);      /* v as P1 draws it */
	for (size_t k = 0; k < n; k++)
		v[k] = (u[k] * v[k] - c0[k]) & mask; /* c1 */
	if (fused)
		memcpy(msg, z2, zlen);
	mpc_pack(msg + zlen, v, n, s);
	struct cdm_xfer x = {0};
	x.send[1] = msg;
	x.send_len[1] = zlen + plen;
	int rc = cdm_net_round(m->net, &x, err);
	cdm_free(msg);
	cdm_free(uc);
	if (rc < 0)
		return rc;
	return mpc_2of2_to_rss(m, out, NULL, n, err);
}

/* P0's part: X is X0 on entry, Y0 on exit. */
static int trunc_p0(cdm_mpc *m, uint64_t *X, size_t n, int s, struct cdm_err *err)
{
	size_t plen = mpc_packed_len(n, s);
	uint64_t *uc = cdm_alloc(n, 24, err);
	uint8_t *pk = uc ? cdm_alloc(2, plen, err) : NULL;
	if (!pk) {
		cdm_free(uc);
		return CDM_ENOMEM;
	}
	uint64_t *u = uc, *c0 = uc + n, *e = uc + 2 * n, mask = mpc_mask(s);
	cdm_prg_u64(mpc_pair(m, 2), uc, 2 * n);
	for (size_t k = 0; k < n; k++) {
		X[k] += ((uint64_t)1 << 62) - 1;
		e[k] = ((X[k] >> 63) - u[k]) & mask; /* d, staged in e */
	}
	mpc_pack(pk, e, n, s);
	struct cdm_xfer x = {0};
	x.send[1] = pk;
	x.send_len[1] = plen;
	x.recv[1] = pk + plen;
	x.recv_len[1] = plen;
	int rc = cdm_net_round(m->net, &x, err);
	if (rc == 0) {
		mpc_unpack(e, pk + plen, n, s);
		for (size_t k = 0; k < n; k++) {
			uint64_t a = X[k] >> 63, d = a - u[k];
			uint64_t ab0 = d * e[k] + u[k] * e[k] + c0[k];
			X[k] = (X[k] >> s) - (a << (64 - s)) + (ab0 << (64 - s)) -
			       (((uint64_t)1 << (62 - s)) - 1);
		}
	}
	cdm_free(pk);
	cdm_free(uc);
	return rc;
}

/* P1's part: X is X1 (plain) or z1 (fused) on entry, Y1 on exit. */
static int trunc_p1(cdm_mpc *m, uint64_t *X, size_t n, int s, int fused, struct cdm_err *err)
{
	size_t plen = mpc_packed_len(n, s), zlen = fused ? n * 8 : 0;
	uint64_t *vb = cdm_alloc(n, 24, err);
	uint8_t *pk = vb ? cdm_alloc(1, zlen + 3 * plen, err) : NULL;
	if (!pk) {
		cdm_free(vb);
		return CDM_ENOMEM;
	}
	uint64_t *v = vb, *t = vb + n, *c1 = vb + 2 * n, mask = mpc_mask(s);
	uint8_t *from2 = pk, *e_pk = pk + zlen + plen, *d_pk = e_pk + plen;
	cdm_prg_u64(mpc_pair(m, 2), v, n);
	struct cdm_xfer x = {0};
	int rc = 0;
	if (fused) {
		/* Round 1: z2 and c1 from P2; X1 = z1 + z2. */
		x.recv[2] = from2;
		x.recv_len[2] = zlen + plen;
		CDM_TRY_FREE(rc = cdm_net_round(m->net, &x, err));
		for (size_t k = 0; k < n; k++) {
			uint64_t z2;
			memcpy(&z2, from2 + 8 * k, 8);
			X[k] += z2;
		}
		memset(&x, 0, sizeof x);
	}
	for (size_t k = 0; k < n; k++)
		t[k] = ((X[k] >> 63) - v[k]) & mask; /* e */
	mpc_pack(e_pk, t, n, s);
	x.send[0] = e_pk;
	x.send_len[0] = plen;
	x.recv[0] = d_pk;
	x.recv_len[0] = plen;
	if (!fused) { /* c1 travels with the d/e exchange */
		x.recv[2] = from2;
		x.recv_len[2] = plen;
	}
	CDM_TRY_FREE(rc = cdm_net_round(m->net, &x, err));
	uint64_t *d = t;
	mpc_unpack(d, d_pk, n, s);
	mpc_unpack(c1, from2 + zlen, n, s);
	for (size_t k = 0; k < n; k++) {
		uint64_t b = X[k] >> 63;
		uint64_t ab1 = d[k] * v[k] + c1[k];
		X[k] = (X[k] >> s) - (b << (64 - s)) + (ab1 << (64 - s));
	}
done:
	cdm_free(pk);
	cdm_free(vb);
	return rc;
}

int mpc_trunc_core(cdm_mpc *m, cdm_shr *out, uint64_t *x, size_t n, int shift, int fused,
		   struct cdm_err *err)
{
	if (shift < 1 || shift > 62)
		return cdm_fail(err, CDM_EINTERNAL, "mpc trunc: shift %d outside 1..62", shift);
	if (n == 0)
		return 0;
	if (m->id == 2)
		return trunc_dealer(m, out, x, n, shift, fused, err);
	if (m->id == 0) {
		CDM_TRY(trunc_p0(m, x, n, shift, err));
	} else {
		CDM_TRY(trunc_p1(m, x, n, shift, fused, err));
	}
	return mpc_2of2_to_rss(m, out, x, n, err);
}

/* ---- the fused truncation in steps (mpc_tjob, see mpc_impl.h) ---------------- */

int mpc_tjob_start(cdm_mpc *m, struct mpc_tjob *j, uint64_t *z, size_t n, int shift,
		   struct cdm_err *err)
{
	size_t plen = mpc_packed_len(n, shift);
	memset(j, 0, sizeof *j);
	j->n = n, j->s = shift, j->X = z;
	uint64_t mask = mpc_mask(shift);
	if (!(j->rnd = cdm_alloc(n, 24, err)))
		return CDM_ENOMEM;
	uint64_t *r0 = j->rnd, *r1 = j->rnd + n, *r2 = j->rnd + 2 * n;
	if (m->id == 2) { /* deal c1 = uv - c0 and hand z2 to P1, as trunc_dealer */
		if (!(j->pk = cdm_alloc(n * 8 + plen, 1, err)))
			return CDM_ENOMEM;
		cdm_prg_u64(mpc_pair(m, 0), r0, 2 * n); /* u, c0 */
		cdm_prg_u64(mpc_pair(m, 1), r2, n);     /* v */
		for (size_t k = 0; k < n; k++)
			r2[k] = (r0[k] * r2[k] - r1[k]) & mask;
		memcpy(j->pk, z, n * 8);
		mpc_pack(j->pk + n * 8, r2, n, shift);
		j->r1.send[1] = j->pk;
		j->r1.send_len[1] = n * 8 + plen;
		return 0;
	}
	if (!(j->pk = cdm_alloc(1, n * 8 + 3 * plen, err)))
		return CDM_ENOMEM;
	uint8_t *mine = j->pk + n * 8 + plen, *theirs = mine + plen;
	int peer = 1 - m->id;
	if (m->id == 0) { /* u, c0; d = MSB(X0 + K) - u goes out in round 2 */
		cdm_prg_u64(mpc_pair(m, 2), r0, 2 * n);
		for (size_t k = 0; k < n; k++) {
			z[k] += ((uint64_t)1 << 62) - 1;
			r2[k] = ((z[k] >> 63) - r0[k]) & mask;
		}
		mpc_pack(mine, r2, n, shift);
	} else { /* v; round 1 brings z2 | c1 from P2 */
		cdm_prg_u64(mpc_pair(m, 2), r0, n);
		j->r1.recv[2] = j->pk;
		j->r1.recv_len[2] = n * 8 + plen;
	}
	j->r2.send[peer] = mine;
	j->r2.send_len[peer] = plen;
	j->r2.recv[peer] = theirs;
	j->r2.recv_len[peer] = plen;
	return 0;
}

void mpc_tjob_mid(cdm_mpc *m, struct mpc_tjob *j)
{
	if (m->id != 1)
		return;
	size_t n = j->n, plen = mpc_packed_len(n, j->s);
	uint64_t *v = j->rnd, *e = j->rnd + n, mask = mpc_mask(j->s);
	for (size_t k = 0; k < n; k++) {
		uint64_t z2;
		memcpy(&z2, j->pk + 8 * k, 8);
		j->X[k] += z2;
		e[k] = ((j->X[k] >> 63) - v[k]) & mask;
	}
	mpc_pack(j->pk + n * 8 + plen, e, n, j->s);
}

void mpc_tjob_end(cdm_mpc *m, struct mpc_tjob *j)
{
	size_t n = j->n, plen = mpc_packed_len(n, j->s);
	int s = j->s;
	uint64_t *X = j->X, *peer = j->rnd + n; /* the peer's e (P0) or d (P1) */
	const uint8_t *theirs = j->pk + n * 8 + 2 * plen;
	if (m->id == 0) {
		const uint64_t *u = j->rnd, *c0 = j->rnd + n;
		uint64_t *e = j->rnd + 2 * n; /* d is no longer needed */
		mpc_unpack(e, theirs, n, s);
		for (size_t k = 0; k < n; k++) {
			uint64_t a = X[k] >> 63, d = a - u[k];
			uint64_t ab0 = d * e[k] + u[k] * e[k] + c0[k];
			X[k] = (X[k] >> s) - (a << (64 - s)) + (ab0 << (64 - s)) -
			       (((uint64_t)1 << (62 - s)) - 1);
		}
	} else if (m->id == 1) {
		const uint64_t *v = j->rnd;
		uint64_t *c1 = j->rnd + 2 * n;
		mpc_unpack(peer, theirs, n, s); /* d */
		mpc_unpack(c1, j->pk + n * 8, n, s);
		for (size_t k = 0; k < n; k++) {
			uint64_t b = X[k] >> 63, ab1 = peer[k] * v[k] + c1[k];
			X[k] = (X[k] >> s) - (b << (64 - s)) + (ab1 << (64 - s));
		}
	}
}

void mpc_tjob_free(struct mpc_tjob *j)
{
	cdm_free(j->rnd);
	cdm_free(j->pk);
	j->rnd = NULL;
	j->pk = NULL;
}

static int check_shift(int shift, const char *what, struct cdm_err *err)
{
	if (shift < 0 || shift > 62)
		return cdm_fail(err, CDM_EINPUT, "mpc %s: shift %d outside 0..62", what, shift);
	return 0;
}

int cdm_mpc_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, int shift,
		  struct cdm_err *err)
{
	CDM_TRY(check_shift(shift, "trunc", err));
	CDM_TRY(mpc_out(out, x->n, "trunc", err));
	if (shift == 0)
		return cdm_shr_copy(out, x, err);
	if (x->n == 0)
		return 0;
	uint64_t *X = NULL;
	if (m->id != 2) {
		X = cdm_alloc(x->n, 8, err);
		if (!X)
			return CDM_ENOMEM;
		for (size_t k = 0; k < x->n; k++)
			X[k] = m->id == 0 ? x->a[k] + x->b[k] : x->b[k];
	}
	int rc = mpc_trunc_core(m, out, X, x->n, shift, 0, err);
	cdm_free(X);
	return rc;
}

int cdm_mpc_mul_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		      struct cdm_err *err)
{
	CDM_TRY(mpc_same(x, y, "mul_trunc", err));
	CDM_TRY(mpc_out(out, x->n, "mul_trunc", err));
	if (x->n == 0)
		return 0;
	uint64_t *z = cdm_alloc(x->n, 8, err);
	if (!z)
		return CDM_ENOMEM;
	int rc = mpc_mul_local(m, z, x, y, err);
	if (rc == 0)
		rc = mpc_trunc_core(m, out, z, x->n, m->frac, 1, err);
	cdm_free(z);
	return rc;
}

int cdm_mpc_dot_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		      size_t terms, const cdm_shr *add, int shift, struct cdm_err *err)
{
	CDM_TRY(check_shift(shift, "dot_trunc", err));
	CDM_TRY(mpc_same(x, y, "dot_trunc", err));
	if (terms == 0 || x->n % terms != 0)
		return cdm_fail(err, CDM_EINPUT, "mpc dot_trunc: %zu elements are not %zu terms",
				x->n, terms);
	size_t n = x->n / terms;
	if (add && add->n != n)
		return cdm_fail(err, CDM_EINPUT, "mpc dot_trunc: addend holds %zu elements, not %zu",
				add->n, n);
	CDM_TRY(mpc_out(out, n, "dot_trunc", err));
	if (n == 0)
		return 0;
	uint64_t *z = cdm_alloc(n, 8, err);
	if (!z)
		return CDM_ENOMEM;
	/* The local cross terms of every product add up into one 3-of-3
	 * sharing of the sum; one zero sharing re-randomises it, and the
	 * replicated addend joins as its component x_i. */
	mpc_dot_local(x, y, terms, z);
	if (add)
		for (size_t k = 0; k < n; k++)
			z[k] += add->a[k];
	int rc = mpc_zero_add(m, z, n, err);
	if (rc == 0)
		rc = shift == 0 ? mpc_reshare(m, out, z, err)
				: mpc_trunc_core(m, out, z, n, shift, 1, err);
	cdm_free(z);
	return rc;
}

int cdm_mpc_mul_pub_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const uint64_t *c,
			  struct cdm_err *err)
{
	CDM_TRY(mpc_out(out, x->n, "mul_pub_trunc", err));
	cdm_mpc_mul_pub(m, out, x, c);
	return cdm_mpc_trunc(m, out, out, m->frac, err);
}

/* Sizes of a (batched) product, refusing overflow. */
static int mm_sizes(size_t batch, size_t rows, size_t inner, size_t cols, size_t *na,
		    size_t *nb, size_t *nc, const char *what, struct cdm_err *err)
{
	size_t t;
	if (cdm_mul_size(rows, inner, &t) || cdm_mul_size(t, batch, na) ||
	    cdm_mul_size(inner, cols, &t) || cdm_mul_size(t, batch, nb) ||
	    cdm_mul_size(rows, cols, &t) || cdm_mul_size(t, batch, nc))
		return cdm_fail(err, CDM_EINPUT, "mpc %s: %zu x [%zu x %zu] x [%zu x %zu] overflows",
				what, batch, rows, inner, inner, cols);
	return 0;
}

/* Finish a product given this party's 3-of-3 share z (scratch): reshare,
 * or fused truncation. */
static int mm_finish(cdm_mpc *m, cdm_shr *c, uint64_t *z, int shift, struct cdm_err *err)
{
	if (shift == 0)
		return mpc_reshare(m, c, z, err);
	return mpc_trunc_core(m, c, z, c->n, shift, 1, err);
}

int cdm_mpc_matmul(cdm_mpc *m, cdm_shr *c, const cdm_shr *a, const cdm_shr *b, size_t batch,
		   size_t rows, size_t inner, size_t cols, int shift, struct cdm_err *err)
{
	size_t na, nb, nc;
	CDM_TRY(check_shift(shift, "matmul", err));
	CDM_TRY(mm_sizes(batch, rows, inner, cols, &na, &nb, &nc, "matmul", err));
	if (a->n != na || b->n != nb)
		return cdm_fail(err, CDM_EINPUT,
				"mpc matmul: operands hold %zu and %zu elements, expected %zu x "
				"[%zu x %zu] and [%zu x %zu]",
				a->n, b->n, batch, rows, inner, inner, cols);
	CDM_TRY(mpc_out(c, nc, "matmul", err));
	if (nc == 0)
		return 0;
	size_t ib = inner * cols;
	uint64_t *z = cdm_alloc(nc + ib, 8, err);
	if (!z)
		return CDM_ENOMEM;
	uint64_t *bsum = z + nc;
	/* z_i = A_i (B_i + B_{i+1}) + A_{i+1} B_i: two GEMMs per product. */
	for (size_t t = 0; t < batch; t++) {
		const uint64_t *aa = a->a + t * rows * inner, *ab = a->b + t * rows * inner;
		const uint64_t *ba = b->a + t * ib, *bb = b->b + t * ib;
		uint64_t *zt = z + t * rows * cols;
		cdm_ring_add(bsum, ba, bb, ib);
		cdm_ring_gemm(zt, aa, bsum, rows, inner, cols, 0);
		cdm_ring_gemm(zt, ab, ba, rows, inner, cols, 1);
	}
	int rc = mpc_zero_add(m, z, nc, err);
	if (rc == 0)
		rc = mm_finish(m, c, z, shift, err);
	cdm_free(z);
	return rc;
}

int cdm_mpc_matmul_pub(cdm_mpc *m, cdm_shr *c, const cdm_shr *a, const uint64_t *b,
		       size_t rows, size_t inner, size_t cols, int shift, struct cdm_err *err)
{
	size_t na, nb, nc;
	CDM_TRY(check_shift(shift, "matmul_pub", err));
	CDM_TRY(mm_sizes(1, rows, inner, cols, &na, &nb, &nc, "matmul_pub", err));
	if (a->n != na)
		return cdm_fail(err, CDM_EINPUT,
				"mpc matmul_pub: left operand holds %zu elements, expected "
				"[%zu x %zu]",
				a->n, rows, inner);
	CDM_TRY(mpc_out(c, nc, "matmul_pub", err));
	if (nc == 0)
		return 0;
	/* Both components times the public B keep the replicated layout. */
	cdm_shr t = {0};
	CDM_TRY(cdm_shr_new(&t, nc, err));
	cdm_ring_gemm(t.a, a->a, b, rows, inner, cols, 0);
	cdm_ring_gemm(t.b, a->b, b, rows, inner, cols, 0);
	int rc = cdm_mpc_trunc(m, c, &t, shift, err);
	cdm_shr_free(&t);
	return rc;
}
