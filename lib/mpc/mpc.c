/* mpc: session setup, shares, input/reveal, linear operations,
 * multiplication and cost labels (see mpc.h). Truncation and matrix
 * products live in trunc.c, comparisons in cmp.c. */
#include "mpc_impl.h"

#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "../ring/pool.h"
#include "../ring/ring.h"

/* ---- small helpers --------------------------------------------------------- */

void mpc_pack(uint8_t *out, const uint64_t *in, size_t n, int bits)
{
	if (bits == 64) {
		memcpy(out, in, n * 8);
		return;
	}
	uint64_t mask = mpc_mask(bits), acc = 0;
	int have = 0; /* bits waiting in acc */
	size_t o = 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t v = in[k] & mask;
		acc |= v << have;
		if (have + bits >= 64) {
			/* acc is full: flush 8 bytes, keep the bits of v that did
			 * not fit. */
			memcpy(out + o, &acc, 8);
			o += 8;
			int used = 64 - have;
			acc = used < 64 ? v >> used : 0;
			have = have + bits - 64;
		} else {
			have += bits;
		}
	}
	while (have > 0) {
		out[o++] = (uint8_t)acc;
		acc >>= 8;
		have -= 8;
	}
}

void mpc_unpack(uint64_t *out, const uint8_t *in, size_t n, int bits)
{
	if (bits == 64) {
		memcpy(out, in, n * 8);
		return;
	}
	uint64_t mask = mpc_mask(bits);
	size_t total = mpc_packed_len(n, bits), k = 0;
	/* Fast part: a whole 8-byte load (plus a ninth byte for offsets that
	 * spill past bit 64, possible only for bits > 56) stays inside the
	 * buffer. */
	for (; k < n; k++) {
		size_t bit = k * (size_t)bits, byte = bit / 8;
		if (byte + 9 > total)
			break;
		int off = (int)(bit % 8);
		uint64_t w;
		memcpy(&w, in + byte, 8);
		w >>= off;
		if (off + bits > 64)
			w |= (uint64_t)in[byte + 8] << (64 - off);
		out[k] = w & mask;
	}
	for (; k < n; k++) {
		/* Tail: read the bytes that are left, a ninth when needed. */
		size_t bit = k * (size_t)bits, byte = bit / 8;
		int off = (int)(bit % 8);
		uint64_t w = 0;
		size_t take = total - byte < 8 ? total - byte : 8;
		memcpy(&w, in + byte, take);
		w >>= off;
		if (off + bits > 64 && byte + 8 < total)
			w |= (uint64_t)in[byte + 8] << (64 - off);
		out[k] = w & mask;
	}
}

/* An n-element sharing whose contents are undefined: protocol outputs are
 * written in full, so zeroing them first (cdm_shr_new) is wasted work --
 * memset was the top symbol of a UNet call's profile. */
static int mpc_shr_raw(cdm_shr *s, size_t n, struct cdm_err *err)
{
	memset(s, 0, sizeof *s);
	s->a = cdm_alloc(n, 8, err);
	s->b = s->a ? cdm_alloc(n, 8, err) : NULL;
	if (!s->b) {
		cdm_free(s->a);
		s->a = NULL;
		return CDM_ENOMEM;
	}
	s->n = n;
	return 0;
}

int mpc_out(cdm_shr *out, size_t n, const char *what, struct cdm_err *err)
{
	if (!out->a && !out->b && out->n == 0)
		return mpc_shr_raw(out, n, err);
	if (out->n != n || !out->a || !out->b)
		return cdm_fail(err, CDM_EINPUT, "mpc %s: output holds %zu elements, expected %zu",
				what, out->n, n);
	return 0;
}

int mpc_same(const cdm_shr *x, const cdm_shr *y, const char *what, struct cdm_err *err)
{
	if (x->n != y->n)
		return cdm_fail(err, CDM_EINPUT, "mpc %s: operand sizes %zu and %zu differ", what,
				x->n, y->n);
	return 0;
}

/* z[0..n) += zero-share words: PRG_self - PRG_next, in stack chunks (no
 * heap traffic). Chunks are even-sized, so each stream advances by
 * ceil(n/2) blocks exactly as one call of n words would. */
static void zero_add_range(cdm_prg *self, cdm_prg *next, uint64_t *z, size_t n)
{
	enum { CHUNK = 4096 };
	uint64_t p[CHUNK], q[CHUNK];
	for (size_t k0 = 0; k0 < n; k0 += CHUNK) {
		size_t c = n - k0 < CHUNK ? n - k0 : CHUNK;
		cdm_prg_u64(self, p, c);
		cdm_prg_u64(next, q, c);
		for (size_t k = 0; k < c; k++)
			z[k0 + k] += p[k] - q[k];
	}
}

struct zero_job {
	cdm_mpc *m;
	uint64_t *z;
	size_t n;
	int failed[CDM_THREADS_MAX];
};

/* One part of a large zero-add: readers of both streams opened at the
 * part's first block (parts start on even words, two words per block). */
static void zero_part(void *arg, int part, int nparts)
{
	struct zero_job *j = arg;
	size_t lo, hi;
	cdm_ring_part(j->n, 2, part, nparts, &lo, &hi);
	cdm_prg self = {0}, next = {0};
	struct cdm_err e = {0};
	if (cdm_prg_open_at(&self, &j->m->zero_self, lo / 2, &e) < 0 ||
	    cdm_prg_open_at(&next, &j->m->zero_next, lo / 2, &e) < 0)
		j->failed[part] = 1;
	else
		zero_add_range(&self, &next, j->z + lo, hi - lo);
	cdm_prg_free(&self);
	cdm_prg_free(&next);
}

/* Zero-adds of at least this many words use the --threads pool. */
#define ZERO_PAR_MIN ((size_t)1 << 15)

int mpc_zero_add(cdm_mpc *m, uint64_t *z, size_t n, struct cdm_err *err)
{
	if (n < ZERO_PAR_MIN || cdm_ring_threads() == 1) {
		zero_add_range(&m->zero_self, &m->zero_next, z, n);
		return 0;
	}
	struct zero_job j = {.m = m, .z = z, .n = n};
	cdm_ring_parallel(zero_part, &j);
	for (int i = 0; i < CDM_THREADS_MAX; i++)
		if (j.failed[i])
			return cdm_fail(err, CDM_EINTERNAL, "mpc: cannot set up a PRG reader");
	cdm_prg_skip(&m->zero_self, (n + 1) / 2);
	cdm_prg_skip(&m->zero_next, (n + 1) / 2);
	return 0;
}

int mpc_round_with(cdm_mpc *m, const struct cdm_xfer *x, const struct cdm_xfer *e,
		   struct cdm_err *err)
{
	if (!e)
		return cdm_net_round(m->net, x, err);
	struct cdm_xfer j = *x;
	uint8_t *sb[CDM_PARTIES] = {0}, *rb[CDM_PARTIES] = {0};
	int rc = 0;
	for (int p = 0; p < CDM_PARTIES && rc == 0; p++) {
		if (e->send_len[p]) {
			j.send_len[p] = x->send_len[p] + e->send_len[p];
			if (!(sb[p] = cdm_alloc(j.send_len[p], 1, err))) {
				rc = CDM_ENOMEM;
				break;
			}
			if (x->send_len[p])
				memcpy(sb[p], x->send[p], x->send_len[p]);
			memcpy(sb[p] + x->send_len[p], e->send[p], e->send_len[p]);
			j.send[p] = sb[p];
		}
		if (e->recv_len[p]) {
			j.recv_len[p] = x->recv_len[p] + e->recv_len[p];
			if (!(rb[p] = cdm_alloc(j.recv_len[p], 1, err))) {
				rc = CDM_ENOMEM;
				break;
			}
			j.recv[p] = rb[p];
		}
	}
	if (rc == 0)
		rc = cdm_net_round(m->net, &j, err);
	for (int p = 0; p < CDM_PARTIES; p++) {
		if (rc == 0 && rb[p]) {
			if (x->recv_len[p])
				memcpy(x->recv[p], rb[p], x->recv_len[p]);
			memcpy(e->recv[p], rb[p] + x->recv_len[p], e->recv_len[p]);
		}
		cdm_free(sb[p]);
		cdm_free(rb[p]);
	}
	return rc;
}

void mpc_dot_local(const cdm_shr *x, const cdm_shr *y, size_t terms, uint64_t *z)
{
	size_t n = x->n / terms;
	memset(z, 0, n * 8);
	for (size_t t = 0; t < terms; t++) {
		const uint64_t *xa = x->a + t * n, *xb = x->b + t * n;
		const uint64_t *ya = y->a + t * n, *yb = y->b + t * n;
		for (size_t k = 0; k < n; k++)
			z[k] += xa[k] * (ya[k] + yb[k]) + xb[k] * ya[k];
	}
}

int mpc_mul_local(cdm_mpc *m, uint64_t *z, const cdm_shr *x, const cdm_shr *y,
		  struct cdm_err *err)
{
	for (size_t k = 0; k < x->n; k++)
		z[k] = x->a[k] * (y->a[k] + y->b[k]) + x->b[k] * y->a[k];
	return mpc_zero_add(m, z, x->n, err);
}

int mpc_reshare(cdm_mpc *m, cdm_shr *out, const uint64_t *z, struct cdm_err *err)
{
	/* z_i goes to party i-1, which holds (z_{i-1}, z_i); z_{i+1} comes
	 * from party i+1. */
	struct cdm_xfer x = {0};
	x.send[mpc_prev(m)] = z;
	x.send_len[mpc_prev(m)] = out->n * 8;
	x.recv[mpc_next(m)] = out->b;
	x.recv_len[mpc_next(m)] = out->n * 8;
	CDM_TRY(cdm_net_round(m->net, &x, err));
	if (out->a != z)
		memcpy(out->a, z, out->n * 8);
	return 0;
}

int mpc_2of2_to_rss(cdm_mpc *m, cdm_shr *out, const uint64_t *y, size_t n,
		    struct cdm_err *err)
{
	/* y1 = r and a mask s come from the P0-P1 stream. P0 sends
	 * y0 = Y0 - r + s to P2, P1 sends y2 = Y1 - s to P2, so
	 * y0 + y1 + y2 = Y0 + Y1 and P2, lacking r, learns nothing; P0 and P1
	 * each see one fresh stream value they share. */
	struct cdm_xfer x = {0};
	if (m->id == 2) {
		x.recv[0] = out->b; /* y0 */
		x.recv_len[0] = n * 8;
		x.recv[1] = out->a; /* y2 */
		x.recv_len[1] = n * 8;
		return cdm_net_round(m->net, &x, err);
	}
	/* Both draw (r, s) in one call so the stream stays in lockstep; the
	 * temporary also lets y alias out->a. */
	cdm_prg *g = mpc_pair(m, m->id ^ 1);
	uint64_t *rs = cdm_alloc(n, 16, err);
	if (!rs)
		return CDM_ENOMEM;
	cdm_prg_u64(g, rs, 2 * n);
	const uint64_t *r = rs, *s = rs + n;
	uint64_t *mine = m->id == 0 ? out->a : out->b; /* y0 or y2 */
	for (size_t k = 0; k < n; k++)
		mine[k] = m->id == 0 ? y[k] - r[k] + s[k] : y[k] - s[k];
	memcpy(m->id == 0 ? out->b : out->a, r, n * 8); /* y1 */
	cdm_free(rs);
	x.send[2] = mine;
	x.send_len[2] = n * 8;
	return cdm_net_round(m->net, &x, err);
}

/* ---- session --------------------------------------------------------------- */

static void mpc_charge(cdm_mpc *m)
{
	struct cdm_net_stats s;
	cdm_net_get_stats(m->net, &s);
	double now = cdm_now();
	struct cdm_cost *c = &m->cost[m->cur];
	c->seconds += now - m->t0;
	c->bytes_sent += s.bytes_sent - m->s0.bytes_sent;
	c->rounds += s.rounds - m->s0.rounds;
	m->t0 = now;
	m->s0 = s;
}

void cdm_mpc_set_label(cdm_mpc *m, const char *label)
{
	mpc_charge(m);
	char name[sizeof m->cost[0].label];
	snprintf(name, sizeof name, "%s", label && *label ? label : "other");
	for (size_t i = 0; i < m->ncost; i++)
		if (strcmp(m->cost[i].label, name) == 0) {
			m->cur = i;
			return;
		}
	if (m->ncost == CDM_MPC_MAX_LABELS) {
		/* Table full: keep charging the current label rather than
		 * losing the numbers. */
		return;
	}
	memset(&m->cost[m->ncost], 0, sizeof m->cost[0]);
	memcpy(m->cost[m->ncost].label, name, sizeof name);
	m->cur = m->ncost++;
}

size_t cdm_mpc_costs(const cdm_mpc *m, struct cdm_cost *out, size_t max)
{
	/* Totals plus what the current label has run up since it started. */
	struct cdm_net_stats s;
	cdm_net_get_stats(m->net, &s);
	size_t n = m->ncost < max ? m->ncost : max;
	for (size_t i = 0; i < n; i++) {
		out[i] = m->cost[i];
		if (i == m->cur) {
			out[i].seconds += cdm_now() - m->t0;
			out[i].bytes_sent += s.bytes_sent - m->s0.bytes_sent;
			out[i].rounds += s.rounds - m->s0.rounds;
		}
	}
	return n;
}

/* Every protocol call allocates and frees buffers of tensor size (MBs).
 * With glibc's defaults the heap top is trimmed back to the kernel after
 * each free and regrown on the next call, so a UNet call spends a third of
 * its CPU in page faults and page clearing. Keep freed memory in the
 * process instead (peak memory is unchanged: the same buffers are reused).
 * Process-wide, set once; harmless for other allocators (no-op). */
static void mpc_tune_malloc(void)
{
#ifdef __GLIBC__
	static int done;
	if (__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED))
		return; /* sessions may start in several threads at once */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	mallopt(M_TOP_PAD, 64 << 20);
#endif
}

static int mpc_prg_from(cdm_prg *g, const uint8_t key[CDM_SEED_BYTES], const char *label,
			struct cdm_err *err)
{
	uint8_t s[CDM_SEED_BYTES];
	cdm_prg_derive(key, label, 0, s);
	return cdm_prg_init(g, s, err);
}

int cdm_mpc_new(cdm_mpc **out, cdm_net *net, const struct cdm_mpc_opts *opts,
		struct cdm_err *err)
{
	*out = NULL;
	mpc_tune_malloc();
	int frac = opts && opts->frac_bits ? opts->frac_bits : CDM_FRAC_BITS_DEFAULT;
	if (frac < CDM_FRAC_BITS_MIN || frac > CDM_FRAC_BITS_MAX)
		return cdm_fail(err, CDM_EINPUT, "mpc: %d fraction bits out of range [%d, %d]", frac,
				CDM_FRAC_BITS_MIN, CDM_FRAC_BITS_MAX);
	cdm_mpc *m = cdm_zalloc(1, sizeof *m, err);
	if (!m)
		return CDM_ENOMEM;
	m->id = cdm_net_id(net);
	m->frac = frac;
	m->net = net;

	/* Own key k_i and own contribution c_i to the common seed. */
	uint8_t mine[2][CDM_SEED_BYTES];
	int rc = 0;
	if (opts && opts->seed) {
		cdm_prg_derive(opts->seed, "mpc-key", (uint64_t)m->id, mine[0]);
		cdm_prg_derive(opts->seed, "mpc-common", (uint64_t)m->id, mine[1]);
	} else if ((rc = cdm_seed_random(mine[0], err)) < 0 ||
		   (rc = cdm_seed_random(mine[1], err)) < 0) {
		cdm_free(m);
		return rc;
	}
	/* One round: (k_i, c_i) to the previous party, c_i to the next. */
	uint8_t from_next[2][CDM_SEED_BYTES], from_prev[CDM_SEED_BYTES];
	struct cdm_xfer x = {0};
	x.send[mpc_prev(m)] = mine;
	x.send_len[mpc_prev(m)] = sizeof mine;
	x.send[mpc_next(m)] = mine[1];
	x.send_len[mpc_next(m)] = CDM_SEED_BYTES;
	x.recv[mpc_next(m)] = from_next;
	x.recv_len[mpc_next(m)] = sizeof from_next;
	x.recv[mpc_prev(m)] = from_prev;
	x.recv_len[mpc_prev(m)] = CDM_SEED_BYTES;
	cdm_net_get_stats(net, &m->s0);
	m->t0 = cdm_now();
	memcpy(m->cost[0].label, "setup", 6);
	m->ncost = 1;
	if ((rc = cdm_net_round(net, &x, err)) < 0) {
		cdm_free(m);
		cdm_err_prefix(err, "mpc session setup: ");
		return rc;
	}
	uint8_t common[CDM_SEED_BYTES];
	for (int i = 0; i < CDM_SEED_BYTES; i++)
		common[i] = mine[1][i] ^ from_next[1][i] ^ from_prev[i];
	if ((rc = mpc_prg_from(&m->zero_self, mine[0], "zero", err)) < 0 ||
	    (rc = mpc_prg_from(&m->zero_next, from_next[0], "zero", err)) < 0 ||
	    (rc = mpc_prg_from(&m->pair_prev, mine[0], "pair", err)) < 0 ||
	    (rc = mpc_prg_from(&m->pair_next, from_next[0], "pair", err)) < 0 ||
	    (rc = mpc_prg_from(&m->common, common, "common", err)) < 0) {
		cdm_mpc_free(m);
		return rc;
	}
	memset(mine, 0, sizeof mine);
	cdm_mpc_set_label(m, "other");
	*out = m;
	return 0;
}

void cdm_mpc_free(cdm_mpc *m)
{
	if (!m)
		return;
	cdm_prg_free(&m->zero_self);
	cdm_prg_free(&m->zero_next);
	cdm_prg_free(&m->pair_prev);
	cdm_prg_free(&m->pair_next);
	cdm_prg_free(&m->common);
	cdm_free(m);
}

int cdm_mpc_id(const cdm_mpc *m) { return m->id; }
int cdm_mpc_frac(const cdm_mpc *m) { return m->frac; }
cdm_net *cdm_mpc_net(cdm_mpc *m) { return m->net; }
cdm_prg *cdm_mpc_common_prg(cdm_mpc *m) { return &m->common; }

/* ---- shares ----------------------------------------------------------------- */

int cdm_shr_new(cdm_shr *s, size_t n, struct cdm_err *err)
{
	memset(s, 0, sizeof *s);
	s->a = cdm_zalloc(n, 8, err);
	s->b = s->a ? cdm_zalloc(n, 8, err) : NULL;
	if (!s->b) {
		cdm_free(s->a);
		s->a = NULL;
		return CDM_ENOMEM;
	}
	s->n = n;
	return 0;
}

void cdm_shr_free(cdm_shr *s)
{
	if (!s)
		return;
	cdm_free(s->a);
	cdm_free(s->b);
	memset(s, 0, sizeof *s);
}

int cdm_shr_copy(cdm_shr *dst, const cdm_shr *src, struct cdm_err *err)
{
	if (dst == src)
		return 0;
	CDM_TRY(mpc_out(dst, src->n, "copy", err));
	memcpy(dst->a, src->a, src->n * 8);
	memcpy(dst->b, src->b, src->n * 8);
	return 0;
}

/* ---- input and output -------------------------------------------------------- */

int cdm_mpc_input(cdm_mpc *m, int owner, const uint64_t *x, size_t n, cdm_shr *out,
		  struct cdm_err *err)
{
	if (owner < 0 || owner >= CDM_PARTIES)
		return cdm_fail(err, CDM_EINPUT, "mpc input: owner %d is not a party", owner);
	if (m->id == owner && !x && n)
		return cdm_fail(err, CDM_EINPUT, "mpc input: owner %d passed no data", owner);
	CDM_TRY(mpc_out(out, n, "input", err));
	if (n == 0)
		return 0;
	/* Owner o: x_o from the stream with o-1 (who holds (x_{o-1}, x_o)),
	 * x_{o+1} from the stream with o+1, and x_{o+2} = x - x_o - x_{o+1}
	 * sent to both others, who lack the first or the second stream value. */
	int next = (owner + 1) % CDM_PARTIES, prev = (owner + 2) % CDM_PARTIES;
	struct cdm_xfer t = {0};
	if (m->id == owner) {
		cdm_prg_u64(mpc_pair(m, prev), out->a, n);
		cdm_prg_u64(mpc_pair(m, next), out->b, n);
		uint64_t *rest = cdm_alloc(n, 8, err);
		if (!rest)
			return CDM_ENOMEM;
		for (size_t k = 0; k < n; k++)
			rest[k] = x[k] - out->a[k] - out->b[k];
		t.send[next] = t.send[prev] = rest;
		t.send_len[next] = t.send_len[prev] = n * 8;
		int rc = cdm_net_round(m->net, &t, err);
		cdm_free(rest);
		return rc;
	}
	if (m->id == next) { /* holds (x_{o+1}, x_{o+2}) */
		cdm_prg_u64(mpc_pair(m, owner), out->a, n);
		t.recv[owner] = out->b;
	} else { /* prev: holds (x_{o+2}, x_o) */
		cdm_prg_u64(mpc_pair(m, owner), out->b, n);
		t.recv[owner] = out->a;
	}
	t.recv_len[owner] = n * 8;
	return cdm_net_round(m->net, &t, err);
}

void cdm_mpc_public(cdm_mpc *m, const uint64_t *x, cdm_shr *out)
{
	/* x0 = x, x1 = x2 = 0: P0 holds (x, 0), P1 (0, 0), P2 (0, x). */
	for (size_t k = 0; k < out->n; k++) {
		out->a[k] = m->id == 0 ? x[k] : 0;
		out->b[k] = m->id == 2 ? x[k] : 0;
	}
}

int cdm_mpc_reveal(cdm_mpc *m, const cdm_shr *x, uint64_t *out, struct cdm_err *err)
{
	/* Party i lacks x_{i+2} = x_{i-1}, which party i-1 holds as `a`. */
	if (x->n == 0)
		return 0;
	CDM_TRY(cdm_net_pass(m->net, x->a, out, x->n * 8, err));
	for (size_t k = 0; k < x->n; k++)
		out[k] += x->a[k] + x->b[k];
	return 0;
}

int cdm_mpc_reveal_to(cdm_mpc *m, int to, const cdm_shr *x, uint64_t *out,
		      struct cdm_err *err)
{
	if (to < 0 || to >= CDM_PARTIES)
		return cdm_fail(err, CDM_EINPUT, "mpc reveal: recipient %d is not a party", to);
	if (m->id == to && !out && x->n)
		return cdm_fail(err, CDM_EINPUT, "mpc reveal: party %d passed no output", to);
	if (x->n == 0)
		return 0;
	/* `to` lacks x_{to+2}, held by party to+2 as its `a`. */
	struct cdm_xfer t = {0};
	int from = (to + 2) % CDM_PARTIES;
	if (m->id == from) {
		t.send[to] = x->a;
		t.send_len[to] = x->n * 8;
	} else if (m->id == to) {
		t.recv[from] = out;
		t.recv_len[from] = x->n * 8;
	} else {
		return 0;
	}
	CDM_TRY(cdm_net_round(m->net, &t, err));
	if (m->id == to)
		for (size_t k = 0; k < x->n; k++)
			out[k] += x->a[k] + x->b[k];
	return 0;
}

/* ---- local linear operations --------------------------------------------------- */

void cdm_mpc_add(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y)
{
	(void)m;
	cdm_ring_add(out->a, x->a, y->a, x->n);
	cdm_ring_add(out->b, x->b, y->b, x->n);
}

void cdm_mpc_sub(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y)
{
	(void)m;
	cdm_ring_sub(out->a, x->a, y->a, x->n);
	cdm_ring_sub(out->b, x->b, y->b, x->n);
}

void cdm_mpc_add_const(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c)
{
	/* The constant joins x0: P0's `a` and P2's `b`. */
	uint64_t ca = m->id == 0 ? c : 0, cb = m->id == 2 ? c : 0;
	for (size_t k = 0; k < x->n; k++) {
		out->a[k] = x->a[k] + ca;
		out->b[k] = x->b[k] + cb;
	}
}

void cdm_mpc_mul_int(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, uint64_t c)
{
	(void)m;
	cdm_ring_mul_scalar(out->a, x->a, c, x->n);
	cdm_ring_mul_scalar(out->b, x->b, c, x->n);
}

void cdm_mpc_mul_pub(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const uint64_t *c)
{
	(void)m;
	for (size_t k = 0; k < x->n; k++) {
		out->a[k] = x->a[k] * c[k];
		out->b[k] = x->b[k] * c[k];
	}
}

/* ---- multiplication ------------------------------------------------------------- */

int cdm_mpc_mul(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
		struct cdm_err *err)
{
	CDM_TRY(mpc_same(x, y, "mul", err));
	CDM_TRY(mpc_out(out, x->n, "mul", err));
	if (x->n == 0)
		return 0;
	uint64_t *z = cdm_alloc(x->n, 8, err);
	if (!z)
		return CDM_ENOMEM;
	int rc = mpc_mul_local(m, z, x, y, err);
	if (rc == 0)
		rc = mpc_reshare(m, out, z, err);
	cdm_free(z);
	return rc;
}
