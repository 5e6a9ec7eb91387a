/*
 * test_leak: party 1's view of a secure computation does not depend on the
 * secret.
 *
 * Three parties in threads (mpc_harness.h over cdm_net_local, fresh random
 * session seeds per run) compute on a secret vector x owned by party 0:
 * input, x*x (mul_trunc), x < 0 (ltz), SiLU (cdm suite), a truncation, and a
 * reveal of the results to party 0 only. The bytes party 1 receives are
 * tapped below the net layer (this file defines readv(), which the static
 * libcdm.a then calls; it forwards to the system call and records what the
 * tapped thread reads), split back into frames, and compared between two
 * runs with very different secrets (A: x = 0.5 everywhere; B: a ramp from
 * -3 to 5):
 *   1. the frame lengths are identical (traffic does not depend on x);
 *   2. per frame (>= 2560 B) and pooled: a two-sample chi-square test on
 *      the byte values, and a two-sample Kolmogorov-Smirnov test on the top
 *      16 bits of each 64-bit word, at a significance of about 1e-9 each;
 *   3. the same tests on party 1's share components (x_1, x_2) of x and of
 *      every result.
 * The test can fail: a control run in which party 0 also sends x in the
 * clear to party 1 (one extra cdm_net_round, as a protocol bug would) must
 * be flagged by these same statistics, and the tap must have seen every
 * byte the net counters say party 1 received. (While writing this test,
 * making cdm_mpc_input's message to party 1 carry x itself was also flagged,
 * in the first frame, chi-square ~ 10^5.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../lib/nonlin/nonlin.h"
#include "../../lib/ring/ring.h"
#include "check.h"
#include "mpc_harness.h"

#define N 8192
#define HDR 32

/* ---- the tap ---------------------------------------------------------------------- */

struct stream {
	int fd;
	uint8_t *buf;
	size_t len, cap;
};
static __thread int tap_on;       /* set in party 1's thread */
static struct stream tap[4];      /* one per file descriptor read */
static int tap_overflow;

static void tap_add(int fd, const struct iovec *iov, int cnt, size_t n)
{
	struct stream *s = NULL;
	for (int i = 0; i < 4 && !s; i++)
		if (tap[i].fd == fd || !tap[i].buf)
			s = &tap[i];
	if (!s) {
		tap_overflow = 1;
		return;
	}
	s->fd = fd;
	if (s->len + n > s->cap) {
		size_t cap = (s->len + n) * 2 + 65536;
		uint8_t *nb = realloc(s->buf, cap);
		if (!nb) {
			tap_overflow = 1;
			return;
		}
		s->buf = nb, s->cap = cap;
	}
	for (int i = 0; i < cnt && n; i++) {
		size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
		memcpy(s->buf + s->len, iov[i].iov_base, k);
		s->len += k, n -= k;
	}
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n = syscall(SYS_readv, fd, iov, iovcnt);
	if (n > 0 && tap_on)
		tap_add(fd, iov, iovcnt, (size_t)n);
	return n;
}

static void tap_reset(void)
{
	for (int i = 0; i < 4; i++)
		free(tap[i].buf);
	memset(tap, 0, sizeof tap);
	tap_overflow = 0;
}

/* ---- a view: party 1's received payloads (by frame) and share components ------------ */

#define MAX_PARTS 4096
struct view {
	size_t nparts;
	uint8_t *part[MAX_PARTS];
	size_t len[MAX_PARTS];
	size_t tapped;      /* bytes the tap saw, headers included */
	uint64_t net_recv;  /* bytes the net layer counted for party 1 */
	int bad_stream;     /* a frame could not be parsed */
	int ok_values;      /* party 0 checked the revealed results */
};

static void view_add(struct view *v, const void *p, size_t len)
{
	if (v->nparts == MAX_PARTS || !len)
		return;
	v->part[v->nparts] = malloc(len);
	memcpy(v->part[v->nparts], p, len);
	v->len[v->nparts++] = len;
}

static void view_free(struct view *v)
{
	for (size_t i = 0; i < v->nparts; i++)
		free(v->part[i]);
	memset(v, 0, sizeof *v);
}

/* Split each tapped stream into frames; keep the payloads. */
static void view_from_tap(struct view *v)
{
	for (int s = 0; s < 4 && tap[s].buf; s++) {
		size_t off = 0;
		v->tapped += tap[s].len;
		while (off + HDR <= tap[s].len) {
			uint32_t magic;
			uint64_t len;
			memcpy(&magic, tap[s].buf + off, 4);
			memcpy(&len, tap[s].buf + off + 24, 8);
			if (magic != 0x314d4443u || len > tap[s].len - off - HDR) {
				v->bad_stream = 1;
				break;
			}
			view_add(v, tap[s].buf + off + HDR, (size_t)len);
			off += HDR + (size_t)len;
		}
		if (off != tap[s].len)
			v->bad_stream = 1;
	}
}

/* ---- the computation -------------------------------------------------------------------- */

struct job {
	const double *x;  /* the secret (party 0) */
	int leak;         /* control: party 0 also sends x in the clear to party 1 */
	struct view *v;   /* party 1 fills its share components */
	int rc;
	char msg[256];
	int ok_values;
};

static void keep_share(struct view *v, const cdm_shr *s)
{
	view_add(v, s->a, s->n * 8);
	view_add(v, s->b, s->n * 8);
}

static void party(cdm_mpc *m, void *arg)
{
	struct job *j = arg;
	struct cdm_err err = {0};
	int id = cdm_mpc_id(m), f = cdm_mpc_frac(m);
	cdm_shr x = {0}, sq = {0}, neg = {0}, si = {0}, tr = {0};
	uint64_t *plain = calloc(N, 8), *out = id == 0 ? calloc(3 * N, 8) : NULL;
	if (id == 1)
		tap_on = 1;
	if (id == 0)
		for (size_t i = 0; i < N; i++)
			plain[i] = cdm_fxp_from_double(j->x[i], f);
	int rc = cdm_mpc_input(m, 0, plain, N, &x, &err);
	if (rc == 0 && j->leak) {
		uint64_t echo[N];
		struct cdm_xfer t = {0};
		if (id == 0)
			t.send[1] = plain, t.send_len[1] = sizeof echo;
		if (id == 1)
			t.recv[0] = echo, t.recv_len[0] = sizeof echo;
		rc = cdm_net_round(cdm_mpc_net(m), &t, &err);
	}
	if (rc == 0)
		rc = cdm_shr_new(&sq, N, &err);
	if (rc == 0)
		rc = cdm_mpc_mul_trunc(m, &sq, &x, &x, &err);
	if (rc == 0)
		rc = cdm_shr_new(&neg, N, &err);
	if (rc == 0)
		rc = cdm_mpc_ltz(m, &neg, &x, &err);
	if (rc == 0)
		rc = cdm_nl_silu(m, CDM_SUITE_CDM, &si, &x, &err);
	if (rc == 0)
		rc = cdm_shr_new(&tr, N, &err);
	if (rc == 0)
		rc = cdm_mpc_trunc(m, &tr, &x, 3, &err);
	if (rc == 0)
		rc = cdm_mpc_reveal_to(m, 0, &sq, out, &err);
	if (rc == 0)
		rc = cdm_mpc_reveal_to(m, 0, &neg, out ? out + N : NULL, &err);
	if (rc == 0)
		rc = cdm_mpc_reveal_to(m, 0, &si, out ? out + 2 * N : NULL, &err);
	tap_on = 0;
	if (rc == 0 && id == 1) {
		keep_share(j->v, &x), keep_share(j->v, &sq), keep_share(j->v, &neg);
		keep_share(j->v, &si), keep_share(j->v, &tr);
	}
	if (rc == 0 && id == 0) { /* the computation is real: check the results */
		int ok = 1;
		for (size_t i = 0; i < N && ok; i++) {
			double v = j->x[i], s = v / (1 + exp(-v));
			ok = fabs(cdm_fxp_to_double(out[i], f) - v * v) < 1e-3 &&
			     out[N + i] == (uint64_t)(v < 0) &&
			     fabs(cdm_fxp_to_double(out[2 * N + i], f) - s) < 1e-2;
		}
		j->ok_values = ok;
	}
	j->rc = rc;
	snprintf(j->msg, sizeof j->msg, "%s", err.msg);
	cdm_shr_free(&x), cdm_shr_free(&sq), cdm_shr_free(&neg), cdm_shr_free(&si);
	cdm_shr_free(&tr);
	free(plain), free(out);
}

static int run_view(const double *x, int leak, struct view *v)
{
	struct job j[3];
	void *args[3];
	memset(v, 0, sizeof *v);
	for (int i = 0; i < 3; i++) {
		memset(&j[i], 0, sizeof j[i]);
		j[i].x = x, j[i].leak = leak, j[i].v = v;
		args[i] = &j[i];
	}
	tap_reset();
	mpc_h_random = 1;
	if (mpc_run3(party, args) < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (j[i].rc < 0) {
			fprintf(stderr, "party %d: %s\n", i, j[i].msg);
			return -1;
		}
	struct view shares = *v; /* party 1's share components, added by party() */
	memset(v, 0, sizeof *v);
	view_from_tap(v);
	for (size_t i = 0; i < shares.nparts; i++) {
		view_add(v, shares.part[i], shares.len[i]);
		free(shares.part[i]);
	}
	v->net_recv = mpc_h_recv[1];
	v->ok_values = j[0].ok_values;
	if (tap_overflow)
		v->bad_stream = 1;
	tap_reset();
	return 0;
}

/* ---- statistics ----------------------------------------------------------------------------- */

/* two-sample chi-square on byte values; returns statistic / threshold(df=255, z=6) */
static double chi2_ratio(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
	double ca[256] = {0}, cb[256] = {0}, chi = 0;
	for (size_t i = 0; i < na; i++)
		ca[a[i]]++;
	for (size_t i = 0; i < nb; i++)
		cb[b[i]]++;
	double ka = sqrt((double)nb / (double)na), kb = sqrt((double)na / (double)nb);
	int df = -1;
	for (int k = 0; k < 256; k++)
		if (ca[k] + cb[k] > 0) {
			double d = ka * ca[k] - kb * cb[k];
			chi += d * d / (ca[k] + cb[k]);
			df++;
		}
	if (df < 1)
		return 0;
	/* Wilson-Hilferty: upper quantile of chi-square(df) at z = 6 (p ~ 1e-9) */
	double q = 2.0 / (9.0 * df), thr = df * pow(1 - q + 6 * sqrt(q), 3);
	return chi / thr;
}

static int cmp_u16(const void *x, const void *y)
{
	return (int)*(const uint16_t *)x - (int)*(const uint16_t *)y;
}

/* two-sample KS on the top 16 bits of each 64-bit word; statistic / critical(1e-9) */
static double ks_ratio(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
	size_t n = na / 8, m = nb / 8;
	if (n < 64 || m < 64)
		return 0;
	uint16_t *x = malloc(n * 2), *y = malloc(m * 2);
	for (size_t i = 0; i < n; i++)
		x[i] = (uint16_t)(a[8 * i + 7] << 8 | a[8 * i + 6]);
	for (size_t i = 0; i < m; i++)
		y[i] = (uint16_t)(b[8 * i + 7] << 8 | b[8 * i + 6]);
	qsort(x, n, 2, cmp_u16);
	qsort(y, m, 2, cmp_u16);
	double d = 0;
	size_t i = 0, k = 0;
	while (i < n && k < m) {
		uint16_t t = x[i] < y[k] ? x[i] : y[k];
		while (i < n && x[i] == t)
			i++;
		while (k < m && y[k] == t)
			k++;
		double diff = fabs((double)i / n - (double)k / m);
		if (diff > d)
			d = diff;
	}
	free(x), free(y);
	double c = sqrt(-0.5 * log(1e-9 / 2));
	return d / (c * sqrt((double)(n + m) / ((double)n * (double)m)));
}

/* Compare two views; returns the number of flagged tests, prints the worst. */
static int compare(const struct view *a, const struct view *b, const char *what)
{
	int flagged = 0;
	double worst = 0;
	size_t worst_at = 0;
	uint8_t *pa = NULL, *pb = NULL;
	size_t la = 0, lb = 0;
	if (a->nparts != b->nparts) {
		fprintf(stderr, "%s: %zu vs %zu parts\n", what, a->nparts, b->nparts);
		return 1;
	}
	for (size_t i = 0; i < a->nparts; i++) {
		if (a->len[i] != b->len[i]) {
			fprintf(stderr, "%s: part %zu: %zu vs %zu bytes\n", what, i, a->len[i], b->len[i]);
			flagged++;
			continue;
		}
		pa = realloc(pa, la + a->len[i]), pb = realloc(pb, lb + b->len[i]);
		memcpy(pa + la, a->part[i], a->len[i]), la += a->len[i];
		memcpy(pb + lb, b->part[i], b->len[i]), lb += b->len[i];
		if (a->len[i] < 2560)
			continue;
		double r = chi2_ratio(a->part[i], a->len[i], b->part[i], b->len[i]);
		double k = ks_ratio(a->part[i], a->len[i], b->part[i], b->len[i]);
		if (r > 1 || k > 1)
			flagged++;
		if ((r > k ? r : k) > worst)
			worst = r > k ? r : k, worst_at = i;
	}
	double r = la ? chi2_ratio(pa, la, pb, lb) : 0, k = la ? ks_ratio(pa, la, pb, lb) : 0;
	flagged += (r > 1) + (k > 1);
	fprintf(stderr, "%s: %zu parts, %zu bytes; pooled chi2/threshold %.3f, KS/critical %.3f; "
		"worst part %zu at %.3f; %d flagged\n", what, a->nparts, la, r, k, worst_at, worst,
		flagged);
	free(pa), free(pb);
	return flagged;
}

int main(void)
{
	check_seed(); /* the statistics use fresh OS randomness; thresholds are at p ~ 1e-9 */
	static double xa[N], xb[N];
	for (size_t i = 0; i < N; i++) {
		xa[i] = 0.5;
		xb[i] = -3.0 + 8.0 * (double)i / N;
	}
	struct view va, vb, vc, vd;
	CHECK(run_view(xa, 0, &va) == 0, "run A");
	CHECK(run_view(xb, 0, &vb) == 0, "run B");
	CHECK(va.ok_values && vb.ok_values, "the secure results are wrong (A %d, B %d)",
	      va.ok_values, vb.ok_values);
	CHECK(!va.bad_stream && !vb.bad_stream, "the tapped stream did not parse as frames");
	/* the tap saw all of party 1's traffic (else it could miss a leak) */
	CHECK(va.tapped == va.net_recv && va.tapped > (size_t)N * 8,
	      "tap saw %zu bytes, the net layer counted %llu", va.tapped,
	      (unsigned long long)va.net_recv);
	CHECK(compare(&va, &vb, "A vs B") == 0, "party 1's view depends on the secret");

	/* control: the same statistics must flag a protocol that sends x in the clear */
	CHECK(run_view(xa, 1, &vc) == 0, "leaky run A");
	CHECK(run_view(xb, 1, &vd) == 0, "leaky run B");
	CHECK(compare(&vc, &vd, "leaky A vs leaky B (control)") > 0,
	      "a plaintext secret sent to party 1 was not detected");
	view_free(&va), view_free(&vb), view_free(&vc), view_free(&vd);
	return check_done();
}
