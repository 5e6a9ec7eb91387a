/*
 * bench/ops: run one operation as three parties (threads over
 * cdm_net_local), time it, count its traffic and compare its output with a
 * double reference.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpc/mpc.h"
#include "../net/net.h"
#include "../ring/ring.h"
#include "ops.h"

const char *const cdm_bench_op_names[] = {
	"mul", "trunc", "mul_trunc", "lt", "select", "relu", "max", "exp", "reciprocal",
	"rsqrt", "sigmoid", "tanh", "silu", "gelu", "mish", "softplus", "softmax", "groupnorm",
	NULL};

enum { OP_MUL, OP_TRUNC, OP_MULT, OP_LT, OP_SEL, OP_RELU, OP_MAX, OP_NL, OP_SOFTMAX, OP_NORM };
#define SOFTMAX_FRAC(F) ((F) + CDM_NL_SOFTMAX_EXTRA_BITS) /* as the attention layers */

struct bjob {
	int kind;
	enum cdm_nl_op nl;
	enum cdm_suite suite;
	size_t n, cols; /* cols: row length of max, softmax, groupnorm */
	int reps;
	const uint64_t *x, *y; /* encoded inputs (party 0 shares them) */
	uint64_t *out;         /* revealed result of the last run */
	double *secs;          /* per run (party 0) */
	uint64_t bytes, rounds;
	cdm_net *net;
	int rc;
	struct cdm_err err;
};

static int run_once(cdm_mpc *m, struct bjob *j, cdm_shr *r, const cdm_shr *x, const cdm_shr *y)
{
	struct cdm_err *e = &j->err;
	switch (j->kind) {
	case OP_MUL: return cdm_mpc_mul(m, r, x, y, e);
	case OP_TRUNC: return cdm_mpc_trunc(m, r, x, cdm_mpc_frac(m), e);
	case OP_MULT: return cdm_mpc_mul_trunc(m, r, x, y, e);
	case OP_LT: return cdm_mpc_lt(m, r, x, y, e);
	case OP_SEL: {
		/* bit ? x : 0 (an all-zero component vector shares 0) */
		cdm_shr z = {0};
		int rc = cdm_shr_new(&z, x->n, e);
		if (rc == 0)
			rc = cdm_mpc_select(m, r, y, x, &z, e);
		cdm_shr_free(&z);
		return rc;
	}
	case OP_RELU: return cdm_mpc_relu(m, r, x, e);
	case OP_MAX: return cdm_mpc_max_rows(m, r, x, j->n / j->cols, j->cols, e);
	case OP_NL: return cdm_nl_apply(m, j->suite, j->nl, r, x, e);
	case OP_SOFTMAX:
		return cdm_nl_softmax_rows_frac(m, j->suite, r, x, j->n / j->cols, j->cols,
						SOFTMAX_FRAC(cdm_mpc_frac(m)), e);
	default: return cdm_nl_norm_rows(m, j->suite, r, x, j->n / j->cols, j->cols, 1e-5, e);
	}
}

static void *party(void *arg)
{
	struct bjob *j = arg;
	static const uint8_t seed[CDM_SEED_BYTES] = {'c', 'd', 'm', '-', 'b', 'e', 'n', 'c', 'h'};
	struct cdm_mpc_opts o = {.seed = seed};
	cdm_mpc *m = NULL;
	cdm_shr x = {0}, y = {0}, r = {0};
	j->rc = cdm_mpc_new(&m, j->net, &o, &j->err);
	if (j->rc == 0)
		j->rc = cdm_mpc_input(m, 0, j->x, j->n, &x, &j->err);
	if (j->rc == 0 && j->y)
		j->rc = cdm_mpc_input(m, 0, j->y, j->n, &y, &j->err);
	for (int k = 0; j->rc == 0 && k < j->reps; k++) {
		struct cdm_net_stats s0, s1;
		cdm_shr_free(&r);
		cdm_net_get_stats(j->net, &s0);
		double t0 = cdm_now();
		j->rc = run_once(m, j, &r, &x, &y);
		j->secs[k] = cdm_now() - t0;
		cdm_net_get_stats(j->net, &s1);
		j->bytes = s1.bytes_sent - s0.bytes_sent;
		j->rounds = s1.rounds - s0.rounds;
	}
	if (j->rc == 0)
		j->rc = cdm_mpc_reveal(m, &r, j->out, &j->err);
	cdm_shr_free(&x), cdm_shr_free(&y), cdm_shr_free(&r);
	cdm_mpc_free(m);
	return NULL;
}

/* ---- inputs and references ------------------------------------------------- */
static uint64_t sm(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static double uni(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * ((sm(s) >> 11) * 0x1.0p-53);
}
static double sp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double nl_ref(enum cdm_nl_op op, enum cdm_suite s, double x)
{
	switch (op) {
	case CDM_NL_EXP: return s == CDM_SUITE_CDM && x > 0 ? 1 : exp(x);
	case CDM_NL_RECIPROCAL: return 1 / x;
	case CDM_NL_RSQRT: return 1 / sqrt(x);
	case CDM_NL_SIGMOID: return 1 / (1 + exp(-x));
	case CDM_NL_TANH: return tanh(x);
	case CDM_NL_SILU: return x / (1 + exp(-x));
	case CDM_NL_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
	case CDM_NL_MISH: return x * tanh(sp(x));
	default: return sp(x);
	}
}

/* Domain of each nonlinear op: cdm on its full documented domain, the
 * baselines where they are documented to work (nonlin.h). */
static void nl_domain(enum cdm_nl_op op, enum cdm_suite s, double *d)
{
	int base = s != CDM_SUITE_CDM;
	d[0] = base ? -8 : -1e4, d[1] = base ? 8 : 1e4;
	if (op == CDM_NL_EXP)
		d[0] = base ? (s == CDM_SUITE_SPU ? -8 : -14) : -20, d[1] = 0;
	if (op == CDM_NL_RECIPROCAL || op == CDM_NL_RSQRT)
		d[0] = base ? 1e-2 : 1e-4, d[1] = base ? 1e4 : 1e6;
	if (op == CDM_NL_MISH && s == CDM_SUITE_SPU)
		d[1] = 5;
}

static double draw(uint64_t *st, const double *d, int logscale)
{
	if (logscale)
		return exp(uni(st, log(d[0]), log(d[1])));
	double u = uni(st, 0, 1), lo = d[0] > -12 ? d[0] : -12, hi = d[1] < 12 ? d[1] : 12;
	if (u < 0.8 || (d[0] >= -12 && d[1] <= 12))
		return uni(st, lo, hi);
	/* log-uniform tails out to the domain's edges */
	if (u < 0.9 && d[1] > 12)
		return exp(uni(st, log(12), log(d[1])));
	return d[0] < -12 ? -exp(uni(st, log(12), log(-d[0]))) : uni(st, lo, hi);
}

static int op_kind(const char *op, enum cdm_nl_op *nl)
{
	static const char *const nls[] = {"exp", "reciprocal", "rsqrt", "sigmoid", "tanh",
					  "silu", "gelu", "mish", "softplus"};
	for (int i = 0; i < 7; i++)
		if (strcmp(op, cdm_bench_op_names[i]) == 0)
			return i;
	for (int i = 0; i < 9; i++)
		if (strcmp(op, nls[i]) == 0) {
			*nl = (enum cdm_nl_op)i;
			return OP_NL;
		}
	if (strcmp(op, "softmax") == 0)
		return OP_SOFTMAX;
	if (strcmp(op, "groupnorm") == 0)
		return OP_NORM;
	return -1;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Fill inputs xd/yd (doubles) and the domain for the op. */
static void make_inputs(int kind, enum cdm_nl_op nl, enum cdm_suite s, size_t n, size_t cols,
			double *xd, double *yd, double *dom)
{
	uint64_t st = 0x5eed + (uint64_t)kind * 131 + (uint64_t)nl * 7;
	dom[0] = -1e4, dom[1] = 1e4;
	if (kind == OP_MUL || kind == OP_MULT)
		dom[0] = -100, dom[1] = 100;
	if (kind == OP_NL)
		nl_domain(nl, s, dom);
	if (kind == OP_SOFTMAX)
		dom[0] = -8, dom[1] = 8;
	if (kind == OP_NORM)
		dom[0] = -4, dom[1] = 4;
	int logscale = kind == OP_NL && (nl == CDM_NL_RECIPROCAL || nl == CDM_NL_RSQRT);
	for (size_t i = 0; i < n; i++) {
		if (kind == OP_SOFTMAX) {
			double u1 = uni(&st, 1e-12, 1), u2 = uni(&st, 0, 1);
			xd[i] = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2); /* N(0, 1) */
			xd[i] = xd[i] < -8 ? -8 : (xd[i] > 8 ? 8 : xd[i]);
		} else if (kind == OP_NORM) {
			xd[i] = (double)(i / cols % 4) + uni(&st, -2, 2) * (1 + (double)(i / cols % 3));
		} else
			xd[i] = kind == OP_NL ? draw(&st, dom, logscale) : uni(&st, dom[0], dom[1]);
		yd[i] = kind == OP_SEL ? (double)(sm(&st) & 1) : uni(&st, dom[0], dom[1]);
	}
}

/* errors of the revealed output against the double reference */
static void errors(int kind, enum cdm_nl_op nl, enum cdm_suite s, size_t n, size_t cols,
		   const double *xd, const double *yd, const uint64_t *out, int F, double *ea,
		   double *er)
{
	*ea = *er = 0;
	size_t rows = n / cols;
	for (size_t i = 0; i < n; i++) {
		double x = cdm_fxp_to_double(cdm_fxp_from_double(xd[i], F), F);
		double y = cdm_fxp_to_double(cdm_fxp_from_double(yd[i], F), F), want, got;
		got = cdm_fxp_to_double(out[i < (kind == OP_MAX ? rows : n) ? i : 0], F);
		switch (kind) {
		case OP_MUL: want = x * y, got = cdm_fxp_to_double(out[i], 2 * F) * 1; break;
		case OP_TRUNC: want = xd[i]; break; /* input encoded at 2F */
		case OP_MULT: want = x * y; break;
		case OP_LT: want = x < y, got = (double)(int64_t)out[i]; break;
		case OP_SEL: want = yd[i] != 0 ? x : 0; break;
		case OP_RELU: want = x > 0 ? x : 0; break;
		case OP_MAX:
			if (i >= rows)
				continue;
			want = -1e300;
			for (size_t k = 0; k < cols; k++) {
				double v = cdm_fxp_to_double(cdm_fxp_from_double(xd[i * cols + k], F), F);
				want = v > want ? v : want;
			}
			break;
		case OP_NL: want = nl_ref(nl, s, x); break;
		default: continue; /* rows below */
		}
		double a = fabs(got - want);
		*ea = a > *ea ? a : *ea;
		if (fabs(want) > 1e-3 && a / fabs(want) > *er)
			*er = a / fabs(want);
	}
	for (size_t r = 0; (kind == OP_SOFTMAX || kind == OP_NORM) && r < rows; r++) {
		const double *xr = xd + r * cols;
		double mx = -1e300, sum = 0, mean = 0, var = 0, l1 = 0;
		for (size_t k = 0; k < cols; k++)
			mx = xr[k] > mx ? xr[k] : mx, mean += xr[k];
		mean /= (double)cols;
		for (size_t k = 0; k < cols; k++)
			sum += exp(xr[k] - mx), var += (xr[k] - mean) * (xr[k] - mean);
		var /= (double)cols;
		int fo = kind == OP_SOFTMAX ? SOFTMAX_FRAC(F) : F;
		for (size_t k = 0; k < cols; k++) {
			double want = kind == OP_SOFTMAX ? exp(xr[k] - mx) / sum
							 : (xr[k] - mean) / sqrt(var + 1e-5);
			double a = fabs(cdm_fxp_to_double(out[r * cols + k], fo) - want);
			l1 += a;
			if (kind == OP_NORM && a > *ea)
				*ea = a;
			if (fabs(want) > 1e-3 && a / fabs(want) > *er)
				*er = a / fabs(want);
		}
		if (kind == OP_SOFTMAX && l1 > *ea)
			*ea = l1;
	}
}

int cdm_bench_op(const char *op, enum cdm_suite s, size_t n, size_t cols, int reps,
		 struct cdm_bench_op_result *out, struct cdm_err *err)
{
	enum cdm_nl_op nl = CDM_NL_EXP;
	int kind = op ? op_kind(op, &nl) : -1, F = CDM_FRAC_BITS_DEFAULT, rc = 0;
	if (kind < 0)
		return cdm_fail(err, CDM_EINPUT, "bench: unknown operation '%s'", op ? op : "");
	if (cdm_suite_name(s)[0] == '?')
		return cdm_fail(err, CDM_EINPUT, "bench: unknown protocol suite %d", (int)s);
	if (n < 1 || n > 10000000 || reps < 5 || reps > 1000)
		return cdm_fail(err, CDM_EINPUT, "bench %s: n %zu (1..1e7) or reps %d (5..1000) out of range",
				op, n, reps);
	if (cols < 2 || cols > 16384)
		return cdm_fail(err, CDM_EINPUT, "bench %s: rows of %zu elements (2..16384)", op, cols);
	int rowwise = kind == OP_MAX || kind == OP_SOFTMAX || kind == OP_NORM;
	if (rowwise) {
		n = n / cols * cols;
		if (n == 0)
			n = cols;
	}
	memset(out, 0, sizeof *out);
	double *xd = cdm_alloc(n, 8, err), *yd = cdm_alloc(n, 8, err);
	uint64_t *xe = cdm_alloc(n, 8, err), *ye = cdm_alloc(n, 8, err);
	struct bjob j[CDM_PARTIES];
	cdm_net *net[CDM_PARTIES] = {0};
	memset(j, 0, sizeof j);
	if (!xd || !yd || !xe || !ye)
		rc = CDM_ENOMEM;
	if (rc == 0) {
		make_inputs(kind, nl, s, n, cols, xd, yd, out->domain);
		for (size_t i = 0; i < n; i++) {
			xe[i] = cdm_fxp_from_double(xd[i], kind == OP_TRUNC ? 2 * F : F);
			ye[i] = kind == OP_SEL ? (uint64_t)yd[i] : cdm_fxp_from_double(yd[i], F);
		}
		rc = cdm_net_local(net, err);
	}
	for (int p = 0; rc == 0 && p < CDM_PARTIES; p++) {
		j[p] = (struct bjob){.kind = kind, .nl = nl, .suite = s, .n = n, .cols = cols,
				     .reps = reps, .x = xe, .y = (kind == OP_MUL || kind == OP_MULT || kind == OP_LT ||
						    kind == OP_SEL) ? ye : NULL,
				     .net = net[p]};
		j[p].out = cdm_zalloc(n, 8, err);
		j[p].secs = cdm_zalloc((size_t)reps, 8, err);
		if (!j[p].out || !j[p].secs)
			rc = CDM_ENOMEM;
	}
	pthread_t th[CDM_PARTIES];
	int started = 0;
	for (int p = 0; rc == 0 && p < CDM_PARTIES; p++) {
		if (pthread_create(&th[p], NULL, party, &j[p]) != 0) {
			rc = cdm_fail(err, CDM_EINTERNAL, "bench: cannot start a thread");
			break;
		}
		started++;
	}
	for (int p = 0; p < started; p++)
		pthread_join(th[p], NULL);
	for (int p = 0; rc == 0 && p < CDM_PARTIES; p++)
		if (j[p].rc < 0) {
			if (err)
				*err = j[p].err;
			rc = j[p].rc;
		}
	if (rc == 0) {
		snprintf(out->op, sizeof out->op, "%s", op);
		snprintf(out->suite, sizeof out->suite, "%s", cdm_suite_name(s));
		out->n = n;
		out->suite_specific = kind >= OP_NL;
		out->bytes_per_elem = (double)(j[0].bytes + j[1].bytes + j[2].bytes) / (double)n;
		/* the protocol's depth: P0 idles in some rounds (a fused
		 * truncation's first one), so take the busiest party */
		for (int p = 0; p < CDM_PARTIES; p++)
			out->rounds = j[p].rounds > out->rounds ? j[p].rounds : out->rounds;
		qsort(j[0].secs, (size_t)reps, sizeof(double), cmp_d);
		out->seconds = j[0].secs[reps / 2];
		out->cols = rowwise ? cols : 0;
		errors(kind, nl, s, n, cols, xd, yd, j[0].out, F, &out->max_abs_err, &out->max_rel_err);
	}
	for (int p = 0; p < CDM_PARTIES; p++) {
		cdm_free(j[p].out);
		cdm_free(j[p].secs);
		cdm_net_free(net[p]);
	}
	cdm_free(xd), cdm_free(yd), cdm_free(xe), cdm_free(ye);
	return rc;
}
