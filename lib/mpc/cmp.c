/* mpc: comparison with zero (ltz), lt, select, ReLU and row maxima.
 *
 * ltz, helper-assisted (P2 deals, P0 and P1 compute), L = CDM_CMP_BITS,
 * for -2^(L-1) <= x < 2^(L-1):
 *
 *  R1 P0, P1 hold x = X0 + X1 (X0 = x0 + x1, X1 = x2). P2 deals r = r0 + r1
 *     mod 2^L (r0 from the P0-P2 stream, r1 from the P1-P2 stream), XOR
 *     shares of r's bits, XOR shares of products of r bits (see leaves) and
 *     of the masks used later. P0 and P1 open c = x + 2^(L-1) + r mod 2^L
 *     (uniform to both). With x' = x + 2^(L-1) in [0, 2^L), x' = c - r and
 *        MSB_L(c - r) = c_{L-1} ^ r_{L-1} ^ [c_low < r_low]
 *     (low = the L-1 lower bits), and x < 0 <=> x' < 2^(L-1), so
 *        ltz = 1 ^ c_{L-1} ^ r_{L-1} ^ [r_low > c_low].
 *  Leaves (local). The L-1 low bits are cut into groups of up to 4. For a
 *     group, G = [r_grp > c_grp] and E = [r_grp == c_grp] are polynomials
 *     in r's bits whose coefficients depend on the public c:
 *        E = prod_i (r_i ^ ~c_i),  G = XOR_j ~c_j r_j prod_{i>j} (r_i ^ ~c_i)
 *     Expanding the products needs XOR shares of every product of r bits
 *     within the group (2^g - 1 - g dealt bits for a group of g), after
 *     which both are local XORs/ANDs with public words.
 *  R2.. Tree. Three adjacent groups (hi, mid, lo) combine into
 *        G = G_h ^ E_h G_m ^ E_h E_m G_l,  E = E_h E_m E_l
 *     (E only when the result is not the lowest group). Each variable x
 *     that occurs in a product is opened masked, d = x ^ u, with the mask u
 *     XOR-shared by P2 (P0's part from the P0-P2 stream, P1's from the
 *     P1-P2 stream) together with XOR shares of the products of the masks
 *     (U_T = prod_{i in T} u_i). Then
 *        prod_{i in M} x_i = XOR_{T subset M} (prod_{i in M\T} d_i) U_T
 *     is local. 9 leaf groups (L = 36) -> 3 -> 1: two rounds.
 *  R4 beta = ltz is XOR-shared by P0, P1. P2 dealt a random bit rho as XOR
 *     shares (both from streams) and as additive shares R0 + R1 = rho mod
 *     2^64 (R0 from the stream, R1 sent). They open m = beta ^ rho (one
 *     word per 64 elements each way); [beta] = m + (1 - 2m)[rho].
 *  R5 2-of-2 -> replicated (mpc_2of2_to_rss).
 *
 * Everything Boolean is bit-sliced: plane[w] holds one bit of elements
 * 64w..64w+63, so per element the dealer sends one bit per r bit and per
 * dealt product, and an opened variable costs one bit each way. P2's
 * messages never depend on data; they travel in the first round.
 * Privacy: every opened value is masked by an independent dealt mask (c by
 * r, d by u, m by rho); P2 receives only the stream-masked 2-of-2 shares.
 */
#include "mpc_impl.h"

#include <string.h>

#include "../ring/ring.h"

#define CMP_L CDM_CMP_BITS
#define CMP_LOW (CMP_L - 1)
#define CMP_G 4                                   /* leaf group size */
#define CMP_NGROUP ((CMP_LOW + CMP_G - 1) / CMP_G) /* leaf groups */
#define CMP_ARITY 3                               /* tree fan-in */
#define CMP_MAXBLK 64                             /* leaves + combines */
#define CMP_MAXLVL 8

/* One evaluation block: a leaf group (variables = r bits) or a combine
 * (variables G_j = 2j, E_j = 2j+1 of up to 3 items). */
struct cmp_block {
	int nv;            /* variables */
	int leaf;          /* 1: leaf group */
	int bit0;          /* leaf: position of variable 0 in r */
	int item0, k;      /* combine: first input item and count */
	int need_e;        /* combine: output E wanted */
	int mask[6];       /* combine: global index of each opened variable's mask, -1 */
	int prod[64];      /* dealt plane index of product U_T, |T| >= 2, else -1 */
};

struct cmp_plan {
	struct cmp_block blk[CMP_MAXBLK];
	int nblk;
	int nleaf;
	int nlevel;
	int lvl_first[CMP_MAXLVL], lvl_count[CMP_MAXLVL]; /* combine blocks per level */
	int lvl_items[CMP_MAXLVL + 1];                    /* items entering each level */
	int lvl_open[CMP_MAXLVL];                         /* opened variables per level */
	int nmask;         /* NU: opened variables overall */
	int ndealt;        /* ND: dealt product planes overall */
};

static int popcount(unsigned v) { return __builtin_popcount(v); }

/* Combine monomials: G terms j < k-1 (G_j with E_i for i > j) and the E
 * product; G_{k-1} enters linearly and is never opened. */
static int combine_monos(int k, int need_e, unsigned mono[4])
{
	int nm = 0;
	for (int j = 0; j < k - 1; j++) {
		unsigned mm = 1u << (2 * j);
		for (int i = j + 1; i < k; i++)
			mm |= 1u << (2 * i + 1);
		mono[nm++] = mm;
	}
	if (need_e) {
		unsigned mm = 0;
		for (int i = 0; i < k; i++)
			mm |= 1u << (2 * i + 1);
		mono[nm++] = mm;
	}
	return nm;
}

static void plan_build(struct cmp_plan *p)
{
	memset(p, 0, sizeof *p);
	/* leaves: every product of two or more of the group's r bits */
	for (int q = 0; q < CMP_NGROUP; q++) {
		struct cmp_block *b = &p->blk[p->nblk++];
		b->leaf = 1;
		b->bit0 = q * CMP_G;
		b->nv = CMP_LOW - b->bit0 < CMP_G ? CMP_LOW - b->bit0 : CMP_G;
		for (unsigned t = 0; t < 64; t++)
			b->prod[t] = t < (1u << b->nv) && popcount(t) >= 2 ? p->ndealt++ : -1;
		for (int v = 0; v < 6; v++)
			b->mask[v] = -1;
	}
	p->nleaf = p->nblk;
	int items = CMP_NGROUP;
	while (items > 1) {
		int l = p->nlevel++;
		p->lvl_items[l] = items;
		p->lvl_first[l] = p->nblk;
		int chunks = (items + CMP_ARITY - 1) / CMP_ARITY;
		for (int c = 0; c < chunks; c++) {
			struct cmp_block *b = &p->blk[p->nblk++];
			b->item0 = c * CMP_ARITY;
			b->k = items - b->item0 < CMP_ARITY ? items - b->item0 : CMP_ARITY;
			b->nv = 2 * b->k;
			b->need_e = c != 0; /* the lowest group's E is never used */
			unsigned mono[4], opened = 0;
			int nm = b->k > 1 ? combine_monos(b->k, b->need_e, mono) : 0;
			for (int i = 0; i < nm; i++)
				opened |= mono[i];
			for (int v = 0; v < 6; v++)
				b->mask[v] = (opened >> v) & 1 ? p->nmask++ : -1;
			p->lvl_open[l] += popcount(opened);
			for (unsigned t = 0; t < 64; t++) {
				int need = 0;
				for (int i = 0; i < nm; i++)
					need |= (t & ~mono[i]) == 0;
				b->prod[t] = need && popcount(t) >= 2 ? p->ndealt++ : -1;
			}
		}
		p->lvl_count[l] = chunks;
		items = chunks;
	}
	p->lvl_items[p->nlevel] = items;
}

/* out ^= coef & XOR_{T subset M} (AND_{i in M\T} D_i) & U_T, bit-sliced over
 * W words. D[i] == NULL means the public part of variable i is 0; U[0] is
 * the constant 1 for P0 and 0 for P1; coef NULL means all ones. */
static void eval_mono(uint64_t *out, const uint64_t *coef, unsigned M, const uint64_t *const *D,
		      const uint64_t *const *U, size_t W)
{
	for (unsigned T = M;; T = (T - 1) & M) {
		const uint64_t *dl[6];
		int nd = 0, zero = 0;
		for (int i = 0; i < 6; i++)
			if (((M & ~T) >> i) & 1) {
				if (!D[i])
					zero = 1;
				dl[nd++] = D[i];
			}
		if (!zero && U[T]) {
			const uint64_t *u = U[T];
			for (size_t w = 0; w < W; w++) {
				uint64_t v = u[w];
				for (int i = 0; i < nd; i++)
					v &= dl[i][w];
				out[w] ^= coef ? v & coef[w] : v;
			}
		}
		if (T == 0)
			break;
	}
}

/* In-place 64 x 64 bit transpose: afterwards bit k of a[j] is bit j of the
 * original a[k] (swap blocks of 32, 16, ..., 1). */
static void transpose64(uint64_t a[64])
{
	uint64_t m = 0x00000000ffffffffULL;
	for (int j = 32; j != 0; j >>= 1, m ^= m << j)
		for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
			uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
			a[k] ^= t << j;
			a[k | j] ^= t;
		}
}

/* Bit planes of the low `bits` bits of n words: planes[j][w] (bits of the
 * padding elements beyond n are 0). */
static void to_planes(uint64_t *planes, const uint64_t *v, size_t n, int bits, size_t W)
{
	uint64_t blk[64];
	for (size_t w = 0; w < W; w++) {
		size_t k0 = w * 64, c = n - k0 < 64 ? n - k0 : 64;
		memcpy(blk, v + k0, c * 8);
		memset(blk + c, 0, (64 - c) * 8);
		transpose64(blk);
		for (int j = 0; j < bits; j++)
			planes[(size_t)j * W + w] = blk[j];
	}
}

/* Working state of one ltz call. Planes are W words each. The first runs
 * mirror the stream draws and P2's message (see ltz_dealer). */
struct cmp_ws {
	size_t n, W;
	struct cmp_plan plan;
	uint64_t *rbits;  /* [L] XOR share of r's bits (P2: true bits)   \ P2 -> P1 */
	uint64_t *dealt;  /* [ND] product shares (P2: true products)      | message */
	uint64_t *R;      /* [n] additive share of rho (P2: scratch)      / */
	uint64_t *umask;  /* [NU] mask shares (P2: true masks) */
	uint64_t *rho;    /* [1] XOR share of rho (P2: true rho) */
	uint64_t *ones;   /* [1] all ones for P0 (U_0 = 1), unused by P1 */
	uint64_t *cpl;    /* [L] public c, bit planes */
	uint64_t *ncpl;   /* [L] ~c */
	uint64_t *items;  /* [2 * NGROUP] G, E planes of the current level */
	uint64_t *next;   /* [2 * NGROUP] next level */
	uint64_t *open;   /* [2 * 6 * NGROUP] opened planes: mine, then the peer's */
	uint64_t *mem;
};

static void ws_free(struct cmp_ws *s) { cdm_free(s->mem); }

static int ws_alloc(struct cmp_ws *s, cdm_mpc *m, size_t n, struct cdm_err *err)
{
	memset(s, 0, sizeof *s);
	s->n = n;
	s->W = (n + 63) / 64;
	plan_build(&s->plan);
	size_t planes = CMP_L + (size_t)s->plan.ndealt + (size_t)s->plan.nmask + 2 + 2 * CMP_L +
			4 * CMP_NGROUP + 12 * CMP_NGROUP;
	size_t words;
	if (cdm_mul_size(planes, s->W, &words) || words > SIZE_MAX / 8 - n)
		return cdm_fail(err, CDM_ENOMEM, "mpc ltz: %zu elements is too many", n);
	s->mem = cdm_zalloc(words + n, 8, err);
	if (!s->mem)
		return CDM_ENOMEM;
	uint64_t *p = s->mem;
	size_t W = s->W;
	s->rbits = p; p += CMP_L * W;
	s->dealt = p; p += (size_t)s->plan.ndealt * W;
	s->R = p; p += n;
	s->umask = p; p += (size_t)s->plan.nmask * W;
	s->rho = p; p += W;
	s->ones = p; p += W;
	s->cpl = p; p += CMP_L * W;
	s->ncpl = p; p += CMP_L * W;
	s->items = p; p += 2 * CMP_NGROUP * W;
	s->next = p; p += 2 * CMP_NGROUP * W;
	s->open = p;
	if (m->id == 0)
		memset(s->ones, 0xff, W * 8);
	return 0;
}

/* Draw order. P0-P2 stream: r0 [n], (rbits|dealt) planes, (umask|rho)
 * planes, R0 [n]. P1-P2 stream: r1 [n], (umask|rho) planes. P2 -> P1, round
 * 1: (rbits|dealt) planes of P1, then R1 [n]. */
static size_t ws_bd_words(const struct cmp_ws *s)
{
	return (CMP_L + (size_t)s->plan.ndealt) * s->W;
}
static size_t ws_ur_words(const struct cmp_ws *s)
{
	return ((size_t)s->plan.nmask + 1) * s->W;
}

/* P2: deal everything; one message to P1 in the first round. */
static int ltz_dealer(cdm_mpc *m, struct cmp_ws *s, const struct cdm_xfer *extra,
		      struct cdm_err *err)
{
	size_t n = s->n, W = s->W, bd = ws_bd_words(s), ur = ws_ur_words(s);
	const struct cmp_plan *pl = &s->plan;
	uint64_t *r = cdm_alloc(n, 8, err);
	uint64_t *a = r ? cdm_alloc(bd + 2 * ur, 8, err) : NULL;
	uint64_t *msg = a ? cdm_alloc(bd + n, 8, err) : NULL;
	if (!msg) {
		cdm_free(a);
		cdm_free(r);
		return CDM_ENOMEM;
	}
	uint64_t *bdA = a, *urA = a + bd, *urB = a + bd + ur;
	cdm_prg *g0 = mpc_pair(m, 0), *g1 = mpc_pair(m, 1);
	uint64_t lmask = mpc_mask(CMP_L);
	cdm_prg_u64(g0, r, n);    /* r0 */
	cdm_prg_u64(g1, s->R, n); /* r1, staged in R */
	for (size_t k = 0; k < n; k++)
		r[k] = (r[k] + s->R[k]) & lmask;
	to_planes(s->rbits, r, n, CMP_L, W);
	cdm_prg_u64(g0, bdA, bd);
	cdm_prg_u64(g0, urA, ur);
	cdm_prg_u64(g1, urB, ur);
	for (size_t w = 0; w < ur; w++) /* true masks and rho: umask|rho contiguous */
		s->umask[w] = urA[w] ^ urB[w];
	for (int bi = 0; bi < pl->nblk; bi++) {
		const struct cmp_block *b = &pl->blk[bi];
		for (unsigned t = 0; t < 64; t++) {
			if (b->prod[t] < 0)
				continue;
			uint64_t *dst = s->dealt + (size_t)b->prod[t] * W;
			memset(dst, 0xff, W * 8);
			for (int v = 0; v < b->nv; v++) {
				if (!((t >> v) & 1))
					continue;
				const uint64_t *src = b->leaf ? s->rbits + (size_t)(b->bit0 + v) * W
							      : s->umask + (size_t)b->mask[v] * W;
				for (size_t w = 0; w < W; w++)
					dst[w] &= src[w];
			}
		}
	}
	/* P1's parts: true ^ P0's for the planes; R1 = rho - R0 */
	for (size_t w = 0; w < bd; w++)
		msg[w] = s->rbits[w] ^ bdA[w]; /* rbits|dealt are contiguous */
	uint64_t *R1 = msg + bd;
	cdm_prg_u64(g0, R1, n); /* R0 */
	for (size_t k = 0; k < n; k++)
		R1[k] = ((s->rho[k / 64] >> (k % 64)) & 1) - R1[k];
	struct cdm_xfer x = {0};
	x.send[1] = msg;
	x.send_len[1] = (bd + n) * 8;
	int rc = mpc_round_with(m, &x, extra, err);
	cdm_free(msg);
	cdm_free(a);
	cdm_free(r);
	return rc;
}

/* P0/P1 round 1: correlated randomness, then open c. */
static int ltz_open_c(cdm_mpc *m, struct cmp_ws *s, const cdm_shr *x,
		      const struct cdm_xfer *extra, struct cdm_err *err)
{
	size_t n = s->n, W = s->W, plen = mpc_packed_len(n, CMP_L);
	uint64_t lmask = mpc_mask(CMP_L);
	cdm_prg *g = mpc_pair(m, 2);
	uint64_t *c = cdm_alloc(n, 8, err);
	uint8_t *pk = c ? cdm_alloc(2, plen, err) : NULL;
	if (!pk) {
		cdm_free(c);
		return CDM_ENOMEM;
	}
	cdm_prg_u64(g, c, n); /* r0 or r1 */
	if (m->id == 0) {
		cdm_prg_u64(g, s->rbits, ws_bd_words(s));
		cdm_prg_u64(g, s->umask, ws_ur_words(s));
		cdm_prg_u64(g, s->R, n);
	} else {
		cdm_prg_u64(g, s->umask, ws_ur_words(s));
	}
	for (size_t k = 0; k < n; k++) {
		uint64_t X = m->id == 0 ? x->a[k] + x->b[k] + ((uint64_t)1 << (CMP_L - 1)) : x->b[k];
		c[k] = (X + c[k]) & lmask;
	}
	mpc_pack(pk, c, n, CMP_L);
	int peer = 1 - m->id;
	struct cdm_xfer t = {0};
	t.send[peer] = pk;
	t.send_len[peer] = plen;
	t.recv[peer] = pk + plen;
	t.recv_len[peer] = plen;
	if (m->id == 1) {
		t.recv[2] = s->rbits; /* rbits | dealt | R1 */
		t.recv_len[2] = (ws_bd_words(s) + n) * 8;
	}
	int rc = mpc_round_with(m, &t, extra, err);
	if (rc == 0) {
		uint64_t *c2 = cdm_alloc(n, 8, err);
		if (!c2) {
			rc = CDM_ENOMEM;
		} else {
			mpc_unpack(c2, pk + plen, n, CMP_L);
			for (size_t k = 0; k < n; k++)
				c[k] = (c[k] + c2[k]) & lmask;
			cdm_free(c2);
			to_planes(s->cpl, c, n, CMP_L, W);
			for (size_t w = 0; w < CMP_L * W; w++)
				s->ncpl[w] = ~s->cpl[w];
		}
	}
	cdm_free(pk);
	cdm_free(c);
	return rc;
}

static void block_u(const struct cmp_ws *s, const struct cmp_block *b, int id,
		    const uint64_t *U[64])
{
	size_t W = s->W;
	for (unsigned t = 0; t < 64; t++)
		U[t] = b->prod[t] >= 0 ? s->dealt + (size_t)b->prod[t] * W : NULL;
	U[0] = id == 0 ? s->ones : NULL;
	for (int v = 0; v < b->nv; v++) {
		if (b->leaf)
			U[1u << v] = s->rbits + (size_t)(b->bit0 + v) * W;
		else if (b->mask[v] >= 0)
			U[1u << v] = s->umask + (size_t)b->mask[v] * W;
	}
}

/* Leaves: G = [r_grp > c_grp], E = [r_grp == c_grp] of each group. */
static void ltz_leaves(const struct cmp_ws *s, int id)
{
	size_t W = s->W;
	memset(s->items, 0, 2 * CMP_NGROUP * W * 8);
	for (int q = 0; q < s->plan.nleaf; q++) {
		const struct cmp_block *b = &s->plan.blk[q];
		const uint64_t *U[64], *D[6] = {0};
		block_u(s, b, id, U);
		for (int v = 0; v < b->nv; v++)
			D[v] = s->ncpl + (size_t)(b->bit0 + v) * W; /* r_v ^ ~c_v = r_v == c_v */
		uint64_t *G = s->items + (size_t)(2 * q) * W, *E = G + W;
		eval_mono(E, NULL, (1u << b->nv) - 1, D, U, W);
		for (int j = 0; j < b->nv; j++) {
			/* ~c_j r_j prod_{i>j} (r_i ^ ~c_i): variable j has public part 0 */
			const uint64_t *Dj[6];
			memcpy(Dj, D, sizeof Dj);
			Dj[j] = NULL;
			unsigned M = ((1u << b->nv) - 1) & ~((1u << j) - 1);
			eval_mono(G, s->ncpl + (size_t)(b->bit0 + j) * W, M, Dj, U, W);
		}
	}
}

/* One tree level: open the masked variables (one round), then combine. */
static int ltz_level(cdm_mpc *m, struct cmp_ws *s, int l, const struct cdm_xfer *extra,
		     struct cdm_err *err)
{
	const struct cmp_plan *pl = &s->plan;
	size_t W = s->W, nopen = (size_t)pl->lvl_open[l];
	uint64_t *mine = s->open, *theirs = s->open + nopen * W;
	size_t o = 0;
	for (int bi = pl->lvl_first[l]; bi < pl->lvl_first[l] + pl->lvl_count[l]; bi++) {
		const struct cmp_block *b = &pl->blk[bi];
		for (int v = 0; v < b->nv; v++) {
			if (b->mask[v] < 0)
				continue;
			const uint64_t *x = s->items + (size_t)(2 * b->item0 + v) * W;
			const uint64_t *u = s->umask + (size_t)b->mask[v] * W;
			for (size_t w = 0; w < W; w++)
				mine[o * W + w] = x[w] ^ u[w];
			o++;
		}
	}
	int peer = 1 - m->id;
	struct cdm_xfer t = {0};
	t.send[peer] = mine;
	t.send_len[peer] = nopen * W * 8;
	t.recv[peer] = theirs;
	t.recv_len[peer] = nopen * W * 8;
	if (nopen || extra)
		CDM_TRY(mpc_round_with(m, &t, extra, err));
	for (size_t w = 0; w < nopen * W; w++)
		mine[w] ^= theirs[w]; /* d = x ^ u, public now */
	o = 0;
	memset(s->next, 0, 2 * CMP_NGROUP * W * 8);
	for (int bi = pl->lvl_first[l]; bi < pl->lvl_first[l] + pl->lvl_count[l]; bi++) {
		const struct cmp_block *b = &pl->blk[bi];
		int c = bi - pl->lvl_first[l];
		uint64_t *G = s->next + (size_t)(2 * c) * W, *E = G + W;
		const uint64_t *in = s->items + (size_t)(2 * b->item0) * W;
		const uint64_t *U[64], *D[6] = {0};
		block_u(s, b, m->id, U);
		for (int v = 0; v < b->nv; v++)
			if (b->mask[v] >= 0)
				D[v] = mine + (o++) * W;
		/* G_{k-1} enters linearly; for k = 1 the item passes through */
		memcpy(G, in + (size_t)(2 * (b->k - 1)) * W, W * 8);
		if (b->k == 1) {
			memcpy(E, in + W, W * 8);
			continue;
		}
		unsigned mono[4];
		int nm = combine_monos(b->k, b->need_e, mono);
		for (int i = 0; i < b->k - 1; i++)
			eval_mono(G, NULL, mono[i], D, U, W);
		if (b->need_e)
			eval_mono(E, NULL, mono[nm - 1], D, U, W);
	}
	uint64_t *tmp = s->items;
	s->items = s->next;
	s->next = tmp;
	return 0;
}

/* After the tree: open m = beta ^ rho, form the 2-of-2 [beta] in y. */
static int ltz_finish(cdm_mpc *m, struct cmp_ws *s, uint64_t *y, struct cdm_err *err)
{
	size_t W = s->W, n = s->n;
	uint64_t *mine = s->open, *theirs = s->open + W;
	const uint64_t *G = s->items, *rtop = s->rbits + (size_t)(CMP_L - 1) * W;
	const uint64_t *nctop = s->ncpl + (size_t)(CMP_L - 1) * W;
	for (size_t w = 0; w < W; w++) /* beta = ~c_{L-1} ^ r_{L-1} ^ G, masked by rho */
		mine[w] = G[w] ^ rtop[w] ^ s->rho[w] ^ (m->id == 0 ? nctop[w] : 0);
	int peer = 1 - m->id;
	struct cdm_xfer t = {0};
	t.send[peer] = mine;
	t.send_len[peer] = W * 8;
	t.recv[peer] = theirs;
	t.recv_len[peer] = W * 8;
	CDM_TRY(cdm_net_round(m->net, &t, err));
	for (size_t k = 0; k < n; k++) {
		uint64_t mk = ((mine[k / 64] ^ theirs[k / 64]) >> (k % 64)) & 1;
		/* [beta] = m + (1 - 2m)[rho]; the constant m joins P0's share */
		y[k] = (1 - 2 * mk) * s->R[k] + (m->id == 0 ? mk : 0);
	}
	return 0;
}

int cdm_mpc_ltz(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	CDM_TRY(mpc_out(out, x->n, "ltz", err));
	if (x->n == 0)
		return 0;
	struct cmp_ws s;
	CDM_TRY(ws_alloc(&s, m, x->n, err));
	int rc;
	if (m->id == 2) {
		rc = ltz_dealer(m, &s, NULL, err);
		if (rc == 0)
			rc = mpc_2of2_to_rss(m, out, NULL, x->n, err);
		ws_free(&s);
		return rc;
	}
	rc = ltz_open_c(m, &s, x, NULL, err);
	if (rc == 0)
		ltz_leaves(&s, m->id);
	for (int l = 0; rc == 0 && l < s.plan.nlevel; l++)
		rc = ltz_level(m, &s, l, NULL, err);
	/* y reuses the c-plane area: n words fit in 2L planes of n/64 words */
	uint64_t *y = s.cpl;
	if (rc == 0)
		rc = ltz_finish(m, &s, y, err);
	if (rc == 0)
		rc = mpc_2of2_to_rss(m, out, y, x->n, err);
	ws_free(&s);
	return rc;
}

/*
 * ltz with a fused product-truncation riding along (no round of its own).
 * The truncation's three messages go with ltz's: P2's z2 and c1 with the
 * dealer message (round 1), the d/e exchange of P0 and P1 with the first
 * tree level (round 2), and its 2-of-2 -> replicated conversion with ltz's
 * (round 5, one call over both). Both draw their stream randomness before
 * any round, the truncation first, identically on both ends of each
 * stream. The job's messages depend only on its own inputs and dealt
 * randomness, so privacy is that of the two protocols run apart.
 */
static int ltz_with_job(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, cdm_shr *pout,
			struct mpc_tjob *j, struct cdm_err *err)
{
	size_t n = x->n, nz = j->n;
	struct cmp_ws s;
	cdm_shr both = {0};
	uint64_t *y = NULL;
	CDM_TRY(ws_alloc(&s, m, n, err));
	int rc = cdm_shr_new(&both, n + nz, err);
	if (rc == 0 && m->id != 2 && !(y = cdm_alloc(n + nz, 8, err)))
		rc = CDM_ENOMEM;
	if (rc == 0 && m->id == 2) {
		rc = ltz_dealer(m, &s, &j->r1, err);
	} else if (rc == 0) {
		rc = ltz_open_c(m, &s, x, &j->r1, err);
		if (rc == 0) {
			mpc_tjob_mid(m, j);
			ltz_leaves(&s, m->id);
		}
		for (int l = 0; rc == 0 && l < s.plan.nlevel; l++) {
			rc = ltz_level(m, &s, l, l == 0 ? &j->r2 : NULL, err);
			if (rc == 0 && l == 0)
				mpc_tjob_end(m, j);
		}
		if (rc == 0)
			rc = ltz_finish(m, &s, y, err);
		if (rc == 0)
			memcpy(y + n, j->X, nz * 8);
	}
	if (rc == 0)
		rc = mpc_2of2_to_rss(m, &both, y, n + nz, err);
	if (rc == 0) {
		memcpy(out->a, both.a, n * 8), memcpy(out->b, both.b, n * 8);
		memcpy(pout->a, both.a + n, nz * 8), memcpy(pout->b, both.b + n, nz * 8);
	}
	cdm_free(y);
	cdm_shr_free(&both);
	ws_free(&s);
	return rc;
}

int cdm_mpc_ltz_dot_trunc(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, cdm_shr *pout,
			  const cdm_shr *px, const cdm_shr *py, size_t terms, int shift,
			  struct cdm_err *err)
{
	if (shift < 1 || shift > 62)
		return cdm_fail(err, CDM_EINPUT, "mpc ltz_dot_trunc: shift %d outside 1..62", shift);
	if (x->n == 0 || px->n == 0) { /* nothing to ride on, or nothing riding */
		CDM_TRY(cdm_mpc_ltz(m, out, x, err));
		return cdm_mpc_dot_trunc(m, pout, px, py, terms, NULL, shift, err);
	}
	CDM_TRY(mpc_same(px, py, "ltz_dot_trunc", err));
	if (terms == 0 || px->n % terms != 0)
		return cdm_fail(err, CDM_EINPUT, "mpc ltz_dot_trunc: %zu elements are not %zu terms",
				px->n, terms);
	size_t nz = px->n / terms;
	CDM_TRY(mpc_out(out, x->n, "ltz_dot_trunc", err));
	CDM_TRY(mpc_out(pout, nz, "ltz_dot_trunc", err));
	uint64_t *z = cdm_alloc(nz, 8, err);
	if (!z)
		return CDM_ENOMEM;
	mpc_dot_local(px, py, terms, z);
	struct mpc_tjob j;
	int rc = mpc_zero_add(m, z, nz, err);
	if (rc == 0)
		rc = mpc_tjob_start(m, &j, z, nz, shift, err);
	if (rc == 0) {
		rc = ltz_with_job(m, out, x, pout, &j, err);
		mpc_tjob_free(&j);
	}
	cdm_free(z);
	return rc;
}

/* ---- built on ltz ---------------------------------------------------------- */

int cdm_mpc_lt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
	       struct cdm_err *err)
{
	CDM_TRY(mpc_same(x, y, "lt", err));
	cdm_shr d = {0};
	CDM_TRY(cdm_shr_new(&d, x->n, err));
	cdm_mpc_sub(m, &d, x, y);
	int rc = cdm_mpc_ltz(m, out, &d, err);
	cdm_shr_free(&d);
	return rc;
}

int cdm_mpc_select(cdm_mpc *m, cdm_shr *out, const cdm_shr *bit, const cdm_shr *x,
		   const cdm_shr *y, struct cdm_err *err)
{
	CDM_TRY(mpc_same(x, y, "select", err));
	CDM_TRY(mpc_same(bit, x, "select", err));
	CDM_TRY(mpc_out(out, x->n, "select", err));
	/* y + bit (x - y): one multiplication, no truncation (bit is 0/1) */
	cdm_shr d = {0};
	CDM_TRY(cdm_shr_new(&d, x->n, err));
	cdm_mpc_sub(m, &d, x, y);
	int rc = cdm_mpc_mul(m, &d, bit, &d, err);
	if (rc == 0)
		cdm_mpc_add(m, out, y, &d);
	cdm_shr_free(&d);
	return rc;
}

int cdm_mpc_relu(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	/* x * (1 - [x < 0]) */
	cdm_shr b = {0};
	int rc = cdm_mpc_ltz(m, &b, x, err);
	if (rc == 0) {
		cdm_mpc_mul_int(m, &b, &b, ~(uint64_t)0);
		cdm_mpc_add_const(m, &b, &b, 1);
		rc = cdm_mpc_mul(m, out, x, &b, err);
	}
	cdm_shr_free(&b);
	return rc;
}

/* One binary layer: columns 2j and 2j+1 of every row by lt + select (6
 * rounds); an odd last column is carried. cur (rows x w) becomes rows x
 * ceil(w/2) in place. */
static int max_layer2(cdm_mpc *m, cdm_shr *cur, size_t rows, size_t w, struct cdm_err *err)
{
	size_t h = w / 2, nw = (w + 1) / 2, np = rows * h;
	cdm_shr a = {0}, b = {0}, bit = {0}, mx = {0};
	int rc = cdm_shr_new(&a, np, err);
	if (rc == 0)
		rc = cdm_shr_new(&b, np, err);
	for (size_t r = 0; rc == 0 && r < rows; r++)
		for (size_t j = 0; j < h; j++) {
			size_t src = r * w + 2 * j, dst = r * h + j;
			a.a[dst] = cur->a[src], a.b[dst] = cur->b[src];
			b.a[dst] = cur->a[src + 1], b.b[dst] = cur->b[src + 1];
		}
	if (rc == 0)
		rc = cdm_mpc_lt(m, &bit, &a, &b, err);
	if (rc == 0)
		rc = cdm_mpc_select(m, &mx, &bit, &b, &a, err);
	/* rebuild rows x nw in place: cur shrinks, so write forwards */
	for (size_t r = 0; rc == 0 && r < rows; r++) {
		uint64_t ca = cur->a[r * w + w - 1], cb = cur->b[r * w + w - 1];
		for (size_t j = 0; j < h; j++) {
			cur->a[r * nw + j] = mx.a[r * h + j];
			cur->b[r * nw + j] = mx.b[r * h + j];
		}
		if (nw > h) {
			cur->a[r * nw + h] = ca;
			cur->b[r * nw + h] = cb;
		}
	}
	cdm_shr_free(&a), cdm_shr_free(&b), cdm_shr_free(&bit), cdm_shr_free(&mx);
	return rc;
}

/* The pairs of a group of four, and for element i its three rivals. */
static const int max4_pair[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
static int max4_slot(int i, int j) /* pair index of {i, j} */
{
	int lo = i < j ? i : j, hi = i < j ? j : i;
	return lo == 0 ? hi - 1 : (lo == 1 ? hi + 1 : 5);
}

/* One tournament layer: groups of four columns (the last may be smaller);
 * all pairs of a group in ONE lt call, then element i wins when it beats
 * its three rivals (a_i > a_j, ties to the lower index): max = sum_i
 * e1 e2 e3 a_i as (e1 e2) * (e3 a_i) -- one product round and one dot
 * round. 7 rounds for a factor of 4 (binary layers: 12). */
static int max_layer4(cdm_mpc *m, cdm_shr *cur, size_t rows, size_t w, struct cdm_err *err)
{
	size_t ng = (w + 3) / 4, G = rows * ng, np = 0;
	for (size_t q = 0; q < ng; q++) {
		size_t k = w - 4 * q < 4 ? w - 4 * q : 4;
		np += k * (k - 1) / 2;
	}
	np *= rows;
	cdm_shr d = {0}, lt = {0}, X = {0}, Y = {0}, U, V;
	int rc = cdm_shr_new(&d, np, err);
	if (rc == 0)
		rc = cdm_shr_new(&X, 8 * G, err);
	if (rc == 0)
		rc = cdm_shr_new(&Y, 8 * G, err);
	if (rc < 0)
		goto done;
	/* d = a_i - a_j for every pair of every group, rows and groups major */
	size_t o = 0;
	for (size_t r = 0; r < rows; r++)
		for (size_t q = 0; q < ng; q++) {
			size_t c0 = r * w + 4 * q, k = w - 4 * q < 4 ? w - 4 * q : 4;
			for (int p = 0; p < 6; p++) {
				size_t i = (size_t)max4_pair[p][0], j = (size_t)max4_pair[p][1];
				if (j >= k)
					continue;
				d.a[o] = cur->a[c0 + i] - cur->a[c0 + j];
				d.b[o] = cur->b[c0 + i] - cur->b[c0 + j];
				o++;
			}
		}
	if ((rc = cdm_mpc_ltz(m, &lt, &d, err)) < 0) /* lt = [a_i < a_j], i < j */
		goto done;
	/* X = [e1 | e3], Y = [e2 | a_i], slot t of group g at t*G + g (block
	 * t of the later dot); missing elements are all zero, missing rivals
	 * count as beaten (public 1). */
	uint64_t ca = m->id == 0 ? 1 : 0, cb = m->id == 2 ? 1 : 0;
	o = 0;
	for (size_t r = 0; r < rows; r++)
		for (size_t q = 0; q < ng; q++) {
			size_t g = r * ng + q, c0 = r * w + 4 * q, k = w - 4 * q < 4 ? w - 4 * q : 4;
			size_t base = o; /* first pair of this group */
			int idx[6];
			for (int p = 0, c = 0; p < 6; p++)
				idx[p] = max4_pair[p][1] < (int)k ? c++ : -1;
			o += k * (k - 1) / 2;
			for (size_t i = 0; i < 4; i++) {
				uint64_t e[3][2];
				int n = 0;
				for (size_t j = 0; j < 4; j++) {
					if (j == i)
						continue;
					if (i >= k) {
						e[n][0] = e[n][1] = 0;
					} else if (j >= k) {
						e[n][0] = ca, e[n][1] = cb;
					} else {
						size_t t = base + (size_t)idx[max4_slot((int)i, (int)j)];
						/* i < j: beats = 1 - lt; i > j: beats = lt(j, i) */
						if (i < j)
							e[n][0] = ca - lt.a[t], e[n][1] = cb - lt.b[t];
						else
							e[n][0] = lt.a[t], e[n][1] = lt.b[t];
					}
					n++;
				}
				size_t s1 = i * G + g, s2 = (4 + i) * G + g;
				X.a[s1] = e[0][0], X.b[s1] = e[0][1];
				Y.a[s1] = e[1][0], Y.b[s1] = e[1][1];
				X.a[s2] = e[2][0], X.b[s2] = e[2][1];
				Y.a[s2] = i < k ? cur->a[c0 + i] : 0;
				Y.b[s2] = i < k ? cur->b[c0 + i] : 0;
			}
		}
	if ((rc = cdm_mpc_mul(m, &X, &X, &Y, err)) < 0) /* [e1 e2 | e3 a_i] */
		goto done;
	U = (cdm_shr){.n = 4 * G, .a = X.a, .b = X.b};
	V = (cdm_shr){.n = 4 * G, .a = X.a + 4 * G, .b = X.b + 4 * G};
	cdm_shr res = {0};
	if ((rc = cdm_mpc_dot_trunc(m, &res, &U, &V, 4, NULL, 0, err)) == 0) {
		memcpy(cur->a, res.a, G * 8); /* rows x ng, row major */
		memcpy(cur->b, res.b, G * 8);
	}
	cdm_shr_free(&res);
done:
	cdm_shr_free(&d), cdm_shr_free(&lt), cdm_shr_free(&X), cdm_shr_free(&Y);
	return rc;
}

int cdm_mpc_max_rows(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, size_t rows, size_t cols,
		     struct cdm_err *err)
{
	size_t total;
	if (cdm_mul_size(rows, cols, &total) || total != x->n)
		return cdm_fail(err, CDM_EINPUT, "mpc max_rows: input holds %zu elements, not %zu x %zu",
				x->n, rows, cols);
	if (cols == 0 && rows > 0)
		return cdm_fail(err, CDM_EINPUT, "mpc max_rows: rows have no columns");
	CDM_TRY(mpc_out(out, rows, "max_rows", err));
	if (rows == 0)
		return 0;
	/* cur: rows x w. A binary first layer on rows longer than 8 (it
	 * compares half as many pairs per element as a tournament layer, and
	 * the first layer carries most of the bytes), then tournament layers
	 * of four while w > 2, a binary layer for a last pair. */
	cdm_shr cur = {0};
	int rc = cdm_shr_copy(&cur, x, err);
	size_t w = cols;
	while (rc == 0 && w > 1) {
		if (w == 2 || (w == cols && w > 8)) {
			rc = max_layer2(m, &cur, rows, w, err);
			w = (w + 1) / 2;
		} else {
			rc = max_layer4(m, &cur, rows, w, err);
			w = (w + 3) / 4;
		}
	}
	if (rc == 0) {
		memcpy(out->a, cur.a, rows * 8);
		memcpy(out->b, cur.b, rows * 8);
	}
	cdm_shr_free(&cur);
	return rc;
}
