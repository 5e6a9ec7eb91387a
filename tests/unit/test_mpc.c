/* MPC protocols: three parties in three threads over cdm_net_local. Every
 * result is revealed and compared against a plaintext int64 reference;
 * bytes and rounds are asserted against the formulas in trunc.c / cmp.c. */
#include "../../lib/mpc/mpc.h"
#include "../../lib/ring/ring.h"
#include "check.h"
#include "mpc_harness.h"

#include <string.h>

#define HDR 32 /* frame header bytes per message */

enum op {
	OP_ROUNDTRIP, OP_ADD, OP_SUB, OP_MUL, OP_MUL_TRUNC, OP_TRUNC, OP_MATMUL,
	OP_MATMUL_PUB, OP_MUL_PUB_TRUNC, OP_LTZ, OP_LT, OP_SELECT, OP_RELU, OP_MAX_ROWS,
	OP_ADD_CONST, OP_PUBLIC, OP_REVEAL_TO, OP_DOT,
};

/* One protocol call, the same description for the three parties. */
struct job {
	enum op op;
	size_t n, nout;          /* input and output elements */
	const uint64_t *x, *y;   /* plaintext inputs (x owned by P0, y by P1) */
	const uint64_t *bit;     /* select: 0/1 (owned by P2) */
	int shift;
	size_t batch, rows, inner, cols;
	uint64_t konst;
	int owner_x;             /* who inputs x (default 0) */
	/* per party results */
	struct {
		uint64_t *out;   /* revealed result [nout] */
		int rc;
		char msg[256];
		uint64_t sent, rounds; /* cost of the operation alone */
		double seconds;
		uint64_t share_a0; /* first component of the first element */
		uint64_t *view_a, *view_b; /* when set: this party's output components */
	} p[CDM_PARTIES];
};

struct party_arg {
	struct job *j;
	int id;
};

static int run_op(cdm_mpc *m, struct job *j, cdm_shr *x, cdm_shr *y, cdm_shr *b, cdm_shr *z,
		  struct cdm_err *err)
{
	switch (j->op) {
	case OP_ROUNDTRIP: return cdm_shr_copy(z, x, err);
	case OP_ADD: CDM_TRY(cdm_shr_new(z, j->n, err)); cdm_mpc_add(m, z, x, y); return 0;
	case OP_SUB: CDM_TRY(cdm_shr_new(z, j->n, err)); cdm_mpc_sub(m, z, x, y); return 0;
	case OP_ADD_CONST:
		CDM_TRY(cdm_shr_new(z, j->n, err));
		cdm_mpc_add_const(m, z, x, j->konst);
		return 0;
	case OP_PUBLIC: CDM_TRY(cdm_shr_new(z, j->n, err)); cdm_mpc_public(m, j->x, z); return 0;
	case OP_MUL: return cdm_mpc_mul(m, z, x, y, err);
	case OP_MUL_TRUNC: return cdm_mpc_mul_trunc(m, z, x, y, err);
	case OP_TRUNC: return cdm_mpc_trunc(m, z, x, j->shift, err);
	case OP_MUL_PUB_TRUNC: return cdm_mpc_mul_pub_trunc(m, z, x, j->y, err);
	case OP_MATMUL:
		return cdm_mpc_matmul(m, z, x, y, j->batch, j->rows, j->inner, j->cols, j->shift,
				      err);
	case OP_MATMUL_PUB:
		return cdm_mpc_matmul_pub(m, z, x, j->y, j->rows, j->inner, j->cols, j->shift,
					  err);
	case OP_LTZ: return cdm_mpc_ltz(m, z, x, err);
	case OP_LT: return cdm_mpc_lt(m, z, x, y, err);
	case OP_SELECT: return cdm_mpc_select(m, z, b, x, y, err);
	case OP_RELU: return cdm_mpc_relu(m, z, x, err);
	case OP_MAX_ROWS: return cdm_mpc_max_rows(m, z, x, j->rows, j->cols, err);
	case OP_REVEAL_TO: return cdm_shr_copy(z, x, err);
	case OP_DOT: {
		/* konst = 1: the first output-sized block of x is also the addend */
		cdm_shr add = {.n = j->nout, .a = x->a, .b = x->b};
		return cdm_mpc_dot_trunc(m, z, x, y, j->batch, j->konst ? &add : NULL, j->shift,
					 err);
	}
	}
	return cdm_fail(err, CDM_EINTERNAL, "unknown op");
}

static size_t y_len(const struct job *j)
{
	switch (j->op) {
	case OP_MATMUL: return j->batch * j->inner * j->cols;
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_MUL_TRUNC: case OP_LT: case OP_SELECT:
	case OP_DOT:
		return j->n;
	default: return 0;
	}
}

static void party(cdm_mpc *m, void *argp)
{
	struct party_arg *a = argp;
	struct job *j = a->j;
	int id = cdm_mpc_id(m);
	struct cdm_err err = {0};
	cdm_shr x = {0}, y = {0}, b = {0}, z = {0};
	struct cdm_net_stats s0, s1;
	int rc = cdm_mpc_input(m, j->owner_x, id == j->owner_x ? j->x : NULL, j->n, &x, &err);
	size_t ny = y_len(j);
	if (rc == 0 && ny)
		rc = cdm_mpc_input(m, 1, id == 1 ? j->y : NULL, ny, &y, &err);
	if (rc == 0 && j->op == OP_SELECT)
		rc = cdm_mpc_input(m, 2, id == 2 ? j->bit : NULL, j->n, &b, &err);
	if (rc == 0) {
		j->p[id].share_a0 = j->n ? x.a[0] : 0;
		cdm_net_get_stats(cdm_mpc_net(m), &s0);
		double t0 = cdm_now();
		rc = run_op(m, j, &x, &y, &b, &z, &err);
		j->p[id].seconds = cdm_now() - t0;
		cdm_net_get_stats(cdm_mpc_net(m), &s1);
		j->p[id].sent = s1.bytes_sent - s0.bytes_sent;
		j->p[id].rounds = s1.rounds - s0.rounds;
	}
	if (rc == 0 && j->p[id].view_a) {
		memcpy(j->p[id].view_a, z.a, z.n * 8);
		memcpy(j->p[id].view_b, z.b, z.n * 8);
	}
	if (rc == 0 && z.n != j->nout)
		rc = cdm_fail(&err, CDM_EINTERNAL, "output has %zu elements, expected %zu", z.n,
			      j->nout);
	if (rc == 0 && j->op == OP_REVEAL_TO)
		rc = cdm_mpc_reveal_to(m, 2, &z, id == 2 ? j->p[id].out : NULL, &err);
	else if (rc == 0)
		rc = cdm_mpc_reveal(m, &z, j->p[id].out, &err);
	j->p[id].rc = rc;
	snprintf(j->p[id].msg, sizeof j->p[id].msg, "%s", err.msg);
	cdm_shr_free(&x);
	cdm_shr_free(&y);
	cdm_shr_free(&b);
	cdm_shr_free(&z);
}

/* Run j; return party 0's revealed output (all three must agree), or NULL. */
static uint64_t *run_job(struct job *j, const char *what)
{
	struct party_arg pa[CDM_PARTIES];
	void *args[CDM_PARTIES];
	for (int i = 0; i < CDM_PARTIES; i++) {
		j->p[i].out = calloc(j->nout ? j->nout : 1, 8);
		pa[i] = (struct party_arg){j, i};
		args[i] = &pa[i];
	}
	int ok = mpc_run3(party, args) == 0;
	for (int i = 0; i < CDM_PARTIES; i++)
		if (j->p[i].rc < 0) {
			fprintf(stderr, "%s: party %d: %s\n", what, i, j->p[i].msg);
			ok = 0;
		}
	CHECK(ok, "%s runs", what);
	int agree = 1;
	int check_to = j->op == OP_REVEAL_TO ? 2 : 1;
	for (int i = check_to; i < CDM_PARTIES; i++)
		agree &= memcmp(j->p[i].out, j->p[check_to == 2 ? 2 : 0].out, j->nout * 8) == 0;
	CHECK(agree, "%s: the parties reveal the same values", what);
	uint64_t *res = j->p[check_to == 2 ? 2 : 0].out;
	for (int i = 0; i < CDM_PARTIES; i++)
		if (j->p[i].out != res)
			free(j->p[i].out);
	if (!ok) {
		free(res);
		return NULL;
	}
	return res;
}

static uint64_t *rand_vec(uint64_t *st, size_t n, int bits)
{
	/* signed values, |v| < 2^(bits-1) */
	uint64_t *v = malloc((n ? n : 1) * 8);
	for (size_t k = 0; k < n; k++)
		v[k] = bits >= 64 ? check_rand(st)
				  : (uint64_t)((int64_t)(check_rand(st) >> (65 - bits)) *
					       ((check_rand(st) & 1) ? 1 : -1));
	return v;
}

static int64_t floor_shift(uint64_t x, int s) { return (int64_t)x >> s; }

/* ---- tests -------------------------------------------------------------- */

static void test_roundtrip(uint64_t *st)
{
	enum { N = 1000 };
	uint64_t *x = rand_vec(st, N, 64);
	for (int owner = 0; owner < 3; owner++) {
		struct job j = {.op = OP_ROUNDTRIP, .n = N, .nout = N, .x = x, .owner_x = owner};
		uint64_t *r = run_job(&j, "input/reveal");
		CHECK(r && memcmp(r, x, sizeof(uint64_t) * N) == 0,
		      "input by party %d then reveal gives the input back", owner);
		free(r);
	}
	struct job j = {.op = OP_REVEAL_TO, .n = N, .nout = N, .x = x};
	uint64_t *r = run_job(&j, "reveal_to");
	CHECK(r && memcmp(r, x, sizeof(uint64_t) * N) == 0, "reveal_to party 2");
	free(r);
	/* public and add_const */
	struct job jp = {.op = OP_PUBLIC, .n = N, .nout = N, .x = x};
	r = run_job(&jp, "public");
	CHECK(r && memcmp(r, x, sizeof(uint64_t) * N) == 0, "public sharing reveals the value");
	free(r);
	struct job jc = {.op = OP_ADD_CONST, .n = N, .nout = N, .x = x, .konst = 12345};
	r = run_job(&jc, "add_const");
	int bad = !r;
	for (size_t k = 0; r && k < N; k++)
		bad += r[k] != x[k] + 12345;
	CHECK(bad == 0, "add_const");
	free(r);
	free(x);
}

static void test_linear_mul(uint64_t *st)
{
	enum { N = 4096 };
	uint64_t *x = rand_vec(st, N, 64), *y = rand_vec(st, N, 64);
	enum op ops[3] = {OP_ADD, OP_SUB, OP_MUL};
	const char *names[3] = {"add", "sub", "mul"};
	for (int o = 0; o < 3; o++) {
		struct job j = {.op = ops[o], .n = N, .nout = N, .x = x, .y = y};
		uint64_t *r = run_job(&j, names[o]);
		int bad = !r;
		for (size_t k = 0; r && k < N; k++) {
			uint64_t want = o == 0 ? x[k] + y[k] : o == 1 ? x[k] - y[k] : x[k] * y[k];
			bad += r[k] != want;
		}
		CHECK(bad == 0, "%s matches the ring reference (%d wrong)", names[o], bad);
		free(r);
		if (o < 2) {
			for (int i = 0; i < 3; i++)
				CHECK(j.p[i].sent == 0 && j.p[i].rounds == 0, "%s is local", names[o]);
		} else {
			/* mul: 1 round, each party sends 8n bytes + one header */
			for (int i = 0; i < 3; i++)
				CHECK(j.p[i].rounds == 1 && j.p[i].sent == 8 * N + HDR,
				      "mul cost party %d: %llu rounds %llu bytes, expected 1 and %d", i,
				      (unsigned long long)j.p[i].rounds,
				      (unsigned long long)j.p[i].sent, 8 * N + HDR);
		}
	}
	free(x);
	free(y);
}

/* Bytes of the truncation exchange for n elements and shift s. */
static uint64_t packed(size_t n, int bits) { return (n * (size_t)bits + 7) / 8; }

static void check_trunc_cost(struct job *j, size_t n, int s, int fused, const char *what)
{
	/* trunc: round 1 d/e (P0<->P1) and c1 (P2->P1); round 2 y0, y2 to P2.
	 * fused: an extra first round carrying z2 (8n) with c1 to P1. */
	uint64_t p = packed(n, s);
	uint64_t want[3] = {p + HDR + 8 * n + HDR, p + HDR + 8 * n + HDR,
			    p + HDR + (fused ? 8 * n : 0)};
	/* rounds each party takes part in; the protocol's depth is 2 + fused
	 * (P0 idles in the fused first round, P2 only sends and receives) */
	uint64_t rounds[3] = {2, 2u + fused, 2};
	for (int i = 0; i < 3; i++)
		CHECK(j->p[i].sent == want[i] && j->p[i].rounds == rounds[i],
		      "%s cost party %d: %llu bytes %llu rounds, expected %llu and %llu", what, i,
		      (unsigned long long)j->p[i].sent, (unsigned long long)j->p[i].rounds,
		      (unsigned long long)want[i], (unsigned long long)rounds[i]);
}

static void test_trunc_exact(uint64_t *st)
{
	/* 10^6 values across magnitudes up to the bound 2^62, plus edges:
	 * the result must be floor(x / 2^s) or one less, never anything else. */
	enum { N = 1000000 };
	const int s = 20;
	uint64_t *x = malloc(N * 8);
	size_t k = 0;
	const int64_t B = (int64_t)1 << 62;
	int64_t edges[] = {0, 1, -1, 2, -2, (1 << s) - 1, 1 << s, (1 << s) + 1, -(1 << s),
			   -(1 << s) - 1, -(1 << s) + 1, B - 1, -B + 1, B - (1 << s), -B,
			   (B >> s) << s, -((B >> s) << s), 123 << s, -(123 << s)};
	for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
		x[k++] = (uint64_t)edges[e];
	while (k < N) {
		int bits = 1 + (int)(check_rand(st) % 62); /* |x| < 2^bits <= 2^62 */
		uint64_t mag = check_rand(st) >> (64 - bits);
		x[k++] = (check_rand(st) & 1) ? mag : -mag;
	}
	struct job j = {.op = OP_TRUNC, .n = N, .nout = N, .x = x, .shift = s};
	uint64_t *r = run_job(&j, "trunc 1e6");
	size_t exact = 0, up = 0, bad = 0, mult_bad = 0;
	double bias = 0;
	for (size_t i = 0; r && i < N; i++) {
		int64_t want = floor_shift(x[i], s), got = (int64_t)r[i];
		int multiple = (x[i] & ((1u << s) - 1)) == 0;
		if (got == want)
			exact++;
		else if (got == want + 1 && !multiple)
			up++;
		else if (bad++ < 5)
			fprintf(stderr, "trunc x=%lld: got %lld want %lld\n", (long long)x[i],
				(long long)got, (long long)want);
		mult_bad += multiple && got != want;
		/* error against the real quotient, for values where it is
		 * representable in a double without loss */
		if (i >= 19 && (int64_t)x[i] > -((int64_t)1 << 50) && (int64_t)x[i] < ((int64_t)1 << 50))
			bias += (double)got - (double)(int64_t)x[i] / (double)(1 << s);
	}
	CHECK(r && bad == 0, "trunc: %zu of %d results neither floor nor ceil of x/2^s", bad, N);
	CHECK(r && mult_bad == 0, "trunc: exact on multiples of 2^s (%zu wrong)", mult_bad);
	/* about half of the |x| < 2^50 values qualify; stochastic rounding
	 * errors have sd <= 0.5, so the mean is within +-0.005 easily */
	CHECK(fabs(bias / (N / 2.0)) < 0.01, "trunc is unbiased: mean error %.4f LSB",
	      bias / (N / 2.0));
	fprintf(stderr, "trunc 1e6: %zu floor, %zu ceil, mean error %.4f LSB, %.3f s\n", exact, up,
		bias / (N / 2.0), mpc_h_seconds);
	check_trunc_cost(&j, N, s, 0, "trunc");
	free(r);
	/* other shifts on a small vector */
	int shifts[] = {1, 8, 13, 24, 40, 61, 62};
	for (size_t si = 0; si < sizeof shifts / sizeof shifts[0]; si++) {
		struct job js = {.op = OP_TRUNC, .n = 1000, .nout = 1000, .x = x, .shift = shifts[si]};
		r = run_job(&js, "trunc shifts");
		size_t nbad = !r;
		for (size_t i = 0; r && i < 1000; i++) {
			int64_t d = (int64_t)r[i] - floor_shift(x[i], shifts[si]);
			nbad += d != 0 && d != 1;
		}
		CHECK(nbad == 0, "trunc by %d: %zu values off", shifts[si], nbad);
		check_trunc_cost(&js, 1000, shifts[si], 0, "trunc shifts");
		free(r);
	}
	free(x);
}

static void test_mul_trunc(uint64_t *st)
{
	enum { N = 5000 };
	const int F = CDM_FRAC_BITS_DEFAULT;
	uint64_t *x = rand_vec(st, N, 40), *y = rand_vec(st, N, 22);
	struct job j = {.op = OP_MUL_TRUNC, .n = N, .nout = N, .x = x, .y = y};
	uint64_t *r = run_job(&j, "mul_trunc");
	size_t bad = !r;
	for (size_t k = 0; r && k < N; k++) {
		int64_t d = (int64_t)r[k] - floor_shift(x[k] * y[k], F);
		bad += d != 0 && d != 1;
	}
	CHECK(bad == 0, "mul_trunc within 1 LSB of floor(xy / 2^F) (%zu off)", bad);
	check_trunc_cost(&j, N, F, 1, "mul_trunc");
	free(r);
	/* public multiplier */
	struct job jp = {.op = OP_MUL_PUB_TRUNC, .n = N, .nout = N, .x = x, .y = y};
	r = run_job(&jp, "mul_pub_trunc");
	bad = !r;
	for (size_t k = 0; r && k < N; k++) {
		int64_t d = (int64_t)r[k] - floor_shift(x[k] * y[k], F);
		bad += d != 0 && d != 1;
	}
	CHECK(bad == 0, "mul_pub_trunc within 1 LSB (%zu off)", bad);
	check_trunc_cost(&jp, N, F, 0, "mul_pub_trunc");
	free(r);
	free(x);
	free(y);
}

/* Inner products with one fused truncation: values against the int64
 * reference, cost of exactly one product whatever the number of terms. */
static void test_dot(uint64_t *st)
{
	enum { N = 3000, T = 3 };
	const int F = CDM_FRAC_BITS_DEFAULT;
	uint64_t *x = rand_vec(st, N * T, 34), *y = rand_vec(st, N * T, 22);
	for (int shift = 0; shift <= F; shift += F) {
		for (uint64_t withadd = 0; withadd < 2; withadd++) {
			struct job j = {.op = OP_DOT, .n = N * T, .nout = N, .x = x, .y = y,
					.batch = T, .shift = shift, .konst = withadd};
			uint64_t *r = run_job(&j, "dot_trunc");
			size_t bad = !r;
			for (size_t k = 0; r && k < N; k++) {
				uint64_t sum = withadd ? x[k] : 0;
				for (size_t t = 0; t < T; t++)
					sum += x[t * N + k] * y[t * N + k];
				int64_t d = (int64_t)r[k] - (shift ? floor_shift(sum, shift) : (int64_t)sum);
				bad += d != 0 && (shift == 0 || d != 1);
			}
			CHECK(bad == 0, "dot_trunc shift %d add %d: %zu off", shift, (int)withadd, bad);
			if (shift)
				check_trunc_cost(&j, N, shift, 1, "dot_trunc");
			for (int i = 0; !shift && i < 3; i++)
				CHECK(j.p[i].sent == 8 * N + HDR && j.p[i].rounds == 1,
				      "dot without shift costs one mul (party %d: %llu bytes)", i,
				      (unsigned long long)j.p[i].sent);
			free(r);
		}
	}
	free(x);
	free(y);
}

static void test_matmul(uint64_t *st)
{
	const size_t B = 3, R = 5, K = 70, C = 9;
	uint64_t *a = rand_vec(st, B * R * K, 30), *b = rand_vec(st, B * K * C, 24);
	for (int shift = 0; shift <= 20; shift += 20) {
		struct job j = {.op = OP_MATMUL, .n = B * R * K, .nout = B * R * C, .x = a, .y = b,
				.batch = B, .rows = R, .inner = K, .cols = C, .shift = shift};
		uint64_t *r = run_job(&j, "matmul");
		size_t bad = !r;
		for (size_t t = 0; r && t < B; t++)
			for (size_t i = 0; i < R; i++)
				for (size_t c = 0; c < C; c++) {
					uint64_t s = 0;
					for (size_t p = 0; p < K; p++)
						s += a[(t * R + i) * K + p] * b[(t * K + p) * C + c];
					int64_t d = (int64_t)r[(t * R + i) * C + c] - floor_shift(s, shift);
					bad += shift ? (d != 0 && d != 1) : d != 0;
				}
		CHECK(bad == 0, "matmul batch %zu shift %d (%zu wrong)", B, shift, bad);
		if (shift == 0)
			for (int i = 0; i < 3; i++)
				CHECK(j.p[i].sent == 8 * B * R * C + HDR && j.p[i].rounds == 1,
				      "matmul reshare cost is independent of inner");
		else
			check_trunc_cost(&j, B * R * C, shift, 1, "matmul");
		free(r);
	}
	/* public right operand */
	uint64_t *bp = rand_vec(st, K * C, 24);
	struct job j = {.op = OP_MATMUL_PUB, .n = R * K, .nout = R * C, .x = a, .y = bp,
			.rows = R, .inner = K, .cols = C, .shift = 20};
	uint64_t *r = run_job(&j, "matmul_pub");
	size_t bad = !r;
	for (size_t i = 0; r && i < R; i++)
		for (size_t c = 0; c < C; c++) {
			uint64_t s = 0;
			for (size_t p = 0; p < K; p++)
				s += a[i * K + p] * bp[p * C + c];
			int64_t d = (int64_t)r[i * C + c] - floor_shift(s, 20);
			bad += d != 0 && d != 1;
		}
	CHECK(bad == 0, "matmul_pub (%zu wrong)", bad);
	free(r);
	free(bp);
	free(a);
	free(b);
}

static int64_t lim(void) { return ((int64_t)1 << (CDM_CMP_BITS - 1)) - 1; }

/* Values in the comparison domain |x| < 2^(L-1), spread over magnitudes,
 * with the edges first. */
static uint64_t *cmp_vec(uint64_t *st, size_t n, size_t *nedge)
{
	int64_t L = lim();
	int64_t edges[] = {0, -1, 1, L, -L, -L - 1, L - 1, -L + 1, 2, -2, 1 << 20, -(1 << 20)};
	uint64_t *v = malloc(n * 8);
	size_t k = 0, ne = sizeof edges / sizeof edges[0];
	for (; k < ne && k < n; k++)
		v[k] = (uint64_t)edges[k];
	for (; k < n; k++) {
		int bits = 1 + (int)(check_rand(st) % (CDM_CMP_BITS - 1));
		uint64_t mag = check_rand(st) >> (64 - bits);
		v[k] = (check_rand(st) & 1) ? -mag : mag;
	}
	*nedge = ne;
	return v;
}

static void check_ltz_cost(struct job *j, size_t n, const char *what, int extra_mul)
{
	/* L = 36: 35 low bits in 9 groups (8 of 4 bits, 1 of 3); dealt
	 * products 8*11 + 4 = 92; tree 9 -> 3 -> 1 with 3-way combines:
	 * level 1 opens 4 + 5 + 5 = 14 variables and deals 5 + 8 + 8 = 21
	 * products, level 2 opens 4 and deals 5. ND = 118.
	 * P0, P1: c share (36 bits packed), 14 and 4 planes, 1 plane (m),
	 * 8 bytes (to P2). P2: 36 + 118 planes + 8 bytes (R1). */
	uint64_t W = (n + 63) / 64, pl = 8 * W;
	uint64_t p01 = packed(n, 36) + 14 * pl + 4 * pl + pl + 8 * n + 5 * HDR;
	uint64_t p2 = (36 + 118) * pl + 8 * n + HDR;
	uint64_t want[3] = {p01, p01, p2}, rounds[3] = {5, 5, 2};
	for (int i = 0; i < 3; i++) {
		uint64_t w = want[i] + (extra_mul ? 8 * n + HDR : 0);
		uint64_t r = rounds[i] + (extra_mul ? 1 : 0);
		CHECK(j->p[i].sent == w && j->p[i].rounds == r,
		      "%s cost party %d: %llu bytes %llu rounds, expected %llu and %llu", what, i,
		      (unsigned long long)j->p[i].sent, (unsigned long long)j->p[i].rounds,
		      (unsigned long long)w, (unsigned long long)r);
	}
}

static void test_compare(uint64_t *st)
{
#if CDM_CMP_BITS == 36
	enum { N = 20000 };
	size_t ne;
	uint64_t *x = cmp_vec(st, N, &ne), *y = cmp_vec(st, N, &ne);
	struct job j = {.op = OP_LTZ, .n = N, .nout = N, .x = x};
	uint64_t *r = run_job(&j, "ltz");
	size_t bad = !r;
	for (size_t k = 0; r && k < N; k++)
		if (r[k] != ((int64_t)x[k] < 0) && bad++ < 5)
			fprintf(stderr, "ltz(%lld) = %llu\n", (long long)x[k], (unsigned long long)r[k]);
	CHECK(bad == 0, "ltz exact on %d values incl. edges (%zu wrong)", N, bad);
	free(r);
	/* cost on a multiple of 64 */
	struct job jc = {.op = OP_LTZ, .n = 4096, .nout = 4096, .x = x};
	free(run_job(&jc, "ltz cost"));
	check_ltz_cost(&jc, 4096, "ltz", 0);
	struct job jo = {.op = OP_LTZ, .n = 1001, .nout = 1001, .x = x};
	r = run_job(&jo, "ltz odd n");
	bad = !r;
	for (size_t k = 0; r && k < 1001; k++)
		bad += r[k] != ((int64_t)x[k] < 0);
	CHECK(bad == 0, "ltz with n = 1001 (%zu wrong)", bad);
	check_ltz_cost(&jo, 1001, "ltz odd n", 0);
	free(r);

	/* lt: differences stay in range when both halve */
	for (size_t k = 0; k < N; k++) {
		x[k] = (uint64_t)((int64_t)x[k] / 2);
		y[k] = (uint64_t)((int64_t)y[k] / 2);
	}
	x[N - 1] = y[N - 1]; /* equal operands */
	struct job jl = {.op = OP_LT, .n = N, .nout = N, .x = x, .y = y};
	r = run_job(&jl, "lt");
	bad = !r;
	for (size_t k = 0; r && k < N; k++)
		bad += r[k] != ((int64_t)x[k] < (int64_t)y[k]);
	CHECK(bad == 0, "lt exact (%zu wrong)", bad);
	free(r);

	/* select on full-range values */
	uint64_t *bit = malloc(N * 8), *fx = rand_vec(st, N, 64), *fy = rand_vec(st, N, 64);
	for (size_t k = 0; k < N; k++)
		bit[k] = check_rand(st) & 1;
	struct job js = {.op = OP_SELECT, .n = N, .nout = N, .x = fx, .y = fy, .bit = bit};
	r = run_job(&js, "select");
	bad = !r;
	for (size_t k = 0; r && k < N; k++)
		bad += r[k] != (bit[k] ? fx[k] : fy[k]);
	CHECK(bad == 0, "select exact (%zu wrong)", bad);
	for (int i = 0; i < 3; i++)
		CHECK(js.p[i].sent == 8 * N + HDR && js.p[i].rounds == 1,
		      "select costs one multiplication (party %d: %llu bytes)", i,
		      (unsigned long long)js.p[i].sent);
	free(r);

	/* relu */
	struct job jr = {.op = OP_RELU, .n = 4096, .nout = 4096, .x = y};
	r = run_job(&jr, "relu");
	bad = !r;
	for (size_t k = 0; r && k < 4096; k++)
		bad += r[k] != ((int64_t)y[k] < 0 ? 0 : y[k]);
	CHECK(bad == 0, "relu exact (%zu wrong)", bad);
	check_ltz_cost(&jr, 4096, "relu", 1);
	free(r);

	/* max_rows over several widths (odd ones carry a column) */
	size_t widths[] = {1, 2, 3, 4, 5, 8, 9, 13, 196};
	for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
		size_t R = 37, C = widths[wi];
		struct job jm = {.op = OP_MAX_ROWS, .n = R * C, .nout = R, .x = y, .rows = R, .cols = C};
		r = run_job(&jm, "max_rows");
		bad = !r;
		for (size_t i = 0; r && i < R; i++) {
			int64_t best = (int64_t)y[i * C];
			for (size_t c = 1; c < C; c++)
				if ((int64_t)y[i * C + c] > best)
					best = (int64_t)y[i * C + c];
			bad += (int64_t)r[i] != best;
		}
		CHECK(bad == 0, "max_rows %zu x %zu (%zu wrong)", R, C, bad);
		/* a binary first layer (lt + select, 6 rounds) for C > 8, then
		 * tournament layers of four (lt 5 + product 1 + dot 1 rounds)
		 * while more than two columns are left, lt + select for a pair */
		int want = 0;
		for (size_t w = C; w > 1;) {
			int bin = w == 2 || (w == C && w > 8);
			want += bin ? 6 : 7;
			w = bin ? (w + 1) / 2 : (w + 3) / 4;
		}
		CHECK(jm.p[0].rounds == (uint64_t)want, "max_rows %zu: %llu rounds, expected %d",
		      C, (unsigned long long)jm.p[0].rounds, want);
		free(r);
	}
	free(bit);
	free(fx);
	free(fy);
	free(x);
	free(y);
#else
	fprintf(stderr, "comparison cost checks assume CDM_CMP_BITS == 36; skipped\n");
#endif
}

/* Chi-square statistic of the byte at bit offset `sh` over n words. */
static double chi2_byte(const uint64_t *v, size_t n, int sh)
{
	double cnt[256] = {0}, e = (double)n / 256, c2 = 0;
	for (size_t k = 0; k < n; k++)
		cnt[(v[k] >> sh) & 255]++;
	for (int b = 0; b < 256; b++)
		c2 += (cnt[b] - e) * (cnt[b] - e) / e;
	return c2;
}

/* The components one party holds of a fixed secret must look uniform,
 * whatever the secret: chi-square (255 degrees of freedom, mean 255, sd
 * 22.6; bound 380 is p < 1e-6) over the top and bottom bytes of both
 * components, for secrets 0 and 2^40 + 5, after input, mul, trunc and ltz. */
static void test_uniform_shares(void)
{
	enum { N = 1 << 16 };
	uint64_t secrets[2] = {0, ((uint64_t)1 << 40) + 5};
	enum op ops[4] = {OP_ROUNDTRIP, OP_MUL, OP_TRUNC, OP_LTZ};
	const char *names[4] = {"input", "mul", "trunc", "ltz"};
	uint64_t *x = malloc(N * 8), *one = malloc(N * 8);
	uint64_t *va = malloc(N * 8), *vb = malloc(N * 8);
	for (size_t k = 0; k < N; k++)
		one[k] = 1;
	for (int t = 0; t < 2; t++) {
		for (size_t k = 0; k < N; k++)
			x[k] = secrets[t];
		for (int o = 0; o < 4; o++)
			for (int viewer = 0; viewer < 3; viewer++) {
				struct job j = {.op = ops[o], .n = N, .nout = N, .x = x, .y = one,
						.shift = 20};
				j.p[viewer].view_a = va;
				j.p[viewer].view_b = vb;
				uint64_t *r = run_job(&j, names[o]);
				free(r);
				double worst = 0;
				const uint64_t *vs[2] = {va, vb};
				for (int c = 0; c < 2; c++)
					for (int sh = 0; sh <= 56; sh += 56) {
						double c2 = chi2_byte(vs[c], N, sh);
						worst = c2 > worst ? c2 : worst;
					}
				CHECK(worst < 380, "%s of %llu: party %d's components look uniform "
				      "(worst chi2 %.1f)", names[o], (unsigned long long)secrets[t],
				      viewer, worst);
			}
	}
	free(x);
	free(one);
	free(va);
	free(vb);
}

/* Bad calls fail with CDM_EINPUT and a message, symmetrically (before any
 * communication), so nothing hangs. */
struct bad_arg {
	int rc[8];
	char msg[8][256];
};

static void bad_party(cdm_mpc *m, void *argp)
{
	struct bad_arg *a = argp;
	struct cdm_err err = {0};
	cdm_shr x = {0}, y = {0}, z = {0}, w = {0};
	cdm_shr_new(&x, 10, &err);
	cdm_shr_new(&y, 12, &err);
	cdm_shr_new(&w, 7, &err);
	int k = 0;
	a->rc[k] = cdm_mpc_mul(m, &z, &x, &y, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_trunc(m, &z, &x, 63, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_mul_trunc(m, &w, &x, &x, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_input(m, 3, NULL, 5, &z, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_matmul(m, &z, &x, &y, 1, 2, 5, 3, 0, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_max_rows(m, &z, &x, 3, 4, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	a->rc[k] = cdm_mpc_matmul(m, &z, &x, &y, (size_t)1 << 40, (size_t)1 << 40, 2, 2, 0, &err);
	snprintf(a->msg[k++], 256, "%s", err.msg);
	/* after all that the session still works */
	uint64_t v[10] = {1, 2, 3};
	cdm_shr s = {0};
	uint64_t out[10];
	a->rc[k] = cdm_mpc_input(m, 0, v, 10, &s, &err);
	if (a->rc[k] == 0)
		a->rc[k] = cdm_mpc_mul(m, &s, &s, &s, &err);
	if (a->rc[k] == 0)
		a->rc[k] = cdm_mpc_reveal(m, &s, out, &err);
	if (a->rc[k] == 0 && (out[1] != 4 || out[2] != 9))
		a->rc[k] = CDM_EINTERNAL;
	snprintf(a->msg[k++], 256, "%s", err.msg);
	cdm_shr_free(&s);
	cdm_shr_free(&x);
	cdm_shr_free(&y);
	cdm_shr_free(&z);
	cdm_shr_free(&w);
}

static void test_bad_calls(void)
{
	struct bad_arg a[3];
	memset(a, 0, sizeof a);
	void *args[3] = {&a[0], &a[1], &a[2]};
	CHECK(mpc_run3(bad_party, args) == 0, "bad-call session runs");
	const char *want[7] = {"operand sizes 10 and 12", "shift 63", "output holds 7",
			       "owner 3", "operands hold 10 and 12", "not 3 x 4", "overflows"};
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 7; k++)
			CHECK(a[i].rc[k] == CDM_EINPUT && strstr(a[i].msg[k], want[k]),
			      "bad call %d party %d: rc %d, message '%s'", k, i, a[i].rc[k],
			      a[i].msg[k]);
		CHECK(a[i].rc[7] == 0, "party %d: session usable after bad calls (%s)", i,
		      a[i].msg[7]);
	}
}

/* Cost labels charge bytes and rounds to the label in force. */
struct label_arg {
	struct cdm_cost c[CDM_MPC_MAX_LABELS];
	size_t n;
	int rc;
};

static void label_party(cdm_mpc *m, void *argp)
{
	struct label_arg *a = argp;
	struct cdm_err err = {0};
	cdm_shr x = {0}, z = {0};
	cdm_shr_new(&x, 100, &err);
	cdm_mpc_set_label(m, "mul");
	a->rc = cdm_mpc_mul(m, &z, &x, &x, &err);
	cdm_mpc_set_label(m, "trunc");
	if (a->rc == 0)
		a->rc = cdm_mpc_trunc(m, &z, &x, 20, &err);
	cdm_mpc_set_label(m, "mul");
	if (a->rc == 0)
		a->rc = cdm_mpc_mul(m, &z, &x, &x, &err);
	cdm_mpc_set_label(m, "a-label-longer-than-the-field-allows");
	a->n = cdm_mpc_costs(m, a->c, CDM_MPC_MAX_LABELS);
	cdm_shr_free(&x);
	cdm_shr_free(&z);
}

static void test_labels(void)
{
	struct label_arg a[3];
	memset(a, 0, sizeof a);
	void *args[3] = {&a[0], &a[1], &a[2]};
	CHECK(mpc_run3(label_party, args) == 0 && a[0].rc == 0, "label session runs");
	/* setup, other, mul, trunc, the long one (truncated) */
	CHECK(a[0].n == 5, "five labels, got %zu", a[0].n);
	const struct cdm_cost *c = a[0].c;
	CHECK(strcmp(c[0].label, "setup") == 0 && c[0].rounds == 1, "setup: one round");
	CHECK(strcmp(c[2].label, "mul") == 0 && c[2].rounds == 2 && c[2].bytes_sent == 2 * (800 + HDR),
	      "mul label: %llu rounds %llu bytes", (unsigned long long)c[2].rounds,
	      (unsigned long long)c[2].bytes_sent);
	CHECK(strcmp(c[3].label, "trunc") == 0 && c[3].rounds == 2 &&
	      c[3].bytes_sent == packed(100, 20) + HDR + 800 + HDR, "trunc label: %llu rounds",
	      (unsigned long long)c[3].rounds);
	CHECK(strlen(c[4].label) == sizeof c[4].label - 1, "long label is truncated");
}

/* Other fraction bits and OS-random session seeds. */
static void test_frac_and_random_seeds(uint64_t *st)
{
	enum { N = 3000 };
	uint64_t *x = rand_vec(st, N, 36), *y = rand_vec(st, N, 20);
	mpc_h_frac = 12;
	mpc_h_random = 1;
	struct job j = {.op = OP_MUL_TRUNC, .n = N, .nout = N, .x = x, .y = y};
	uint64_t *r = run_job(&j, "mul_trunc F=12, random seeds");
	size_t bad = !r;
	for (size_t k = 0; r && k < N; k++) {
		int64_t d = (int64_t)r[k] - floor_shift(x[k] * y[k], 12);
		bad += d != 0 && d != 1;
	}
	CHECK(bad == 0, "mul_trunc with F = 12 and random seeds (%zu off)", bad);
	check_trunc_cost(&j, N, 12, 1, "mul_trunc F=12");
	free(r);
	mpc_h_frac = 0;
	mpc_h_random = 0;
	free(x);
	free(y);
}

/* CDM_MPC_BENCH=n: time the main protocols on n elements (no checks). */
static void bench(uint64_t *st, size_t n)
{
	uint64_t *x = rand_vec(st, n, 30), *y = rand_vec(st, n, 30);
	enum op ops[] = {OP_MUL, OP_TRUNC, OP_MUL_TRUNC, OP_LTZ, OP_SELECT, OP_RELU};
	const char *names[] = {"mul", "trunc", "mul_trunc", "ltz", "select", "relu"};
	for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
		struct job j = {.op = ops[o], .n = n, .nout = n, .x = x, .y = y, .bit = y,
				.shift = 20};
		free(run_job(&j, names[o]));
		double sec = 0;
		uint64_t bytes = 0;
		for (int i = 0; i < 3; i++) {
			sec = j.p[i].seconds > sec ? j.p[i].seconds : sec;
			bytes += j.p[i].sent;
		}
		fprintf(stderr, "bench %-9s n=%zu: %.3f s, %.2f bytes/elem (all parties), rounds %llu/%llu/%llu\n",
			names[o], n, sec, (double)bytes / (double)n, (unsigned long long)j.p[0].rounds,
			(unsigned long long)j.p[1].rounds, (unsigned long long)j.p[2].rounds);
	}
	free(x);
	free(y);
}

int main(void)
{
	uint64_t st = check_seed();
	if (getenv("CDM_MPC_BENCH")) {
		bench(&st, (size_t)strtoull(getenv("CDM_MPC_BENCH"), NULL, 0));
		return 0;
	}
	test_roundtrip(&st);
	test_linear_mul(&st);
	test_trunc_exact(&st);
	test_mul_trunc(&st);
	test_dot(&st);
	test_matmul(&st);
	test_compare(&st);
	test_uniform_shares();
	test_bad_calls();
	test_labels();
	test_frac_and_random_seeds(&st);
	return check_done();
}
