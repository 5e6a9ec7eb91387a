/*
 * cdm-bench: per-operation costs of the secure engine (ops), ring GEMM
 * throughput against float32 GEMM (gemm), and whole secure sampling runs
 * with three party processes (model). Thin: parses flags, calls
 * cdm_bench_op / cdm_bench_gemm / cdm_bench_model, prints a table or JSON.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/gemm.h"
#include "bench/model.h"
#include "bench/netns.h"
#include "bench/ops.h"
#include "bench/sd.h"
#include "common.h"
#include "ring/pool.h"

#define PROG "cdm-bench"
#define SYNOPSIS                                                                           \
	"cdm-bench ops [--n N] [--cols C] [--reps R] [--protocols cdm,spu,cipherdm]\n"        \
	"                 [--ops LIST] [--threads N] [--json]\n"                              \
	"       cdm-bench gemm [--threads N] [--json]\n"                                      \
	"       cdm-bench model -m MODEL [--sampler ddim|ddpm|dpmpp] [--steps N] [--protocols LIST]\n" \
	"                 [--batch B] [--net loopback|lan|wan] [--runs R] [--label N] [--seed S]\n" \
	"                 [--keep DIR] [--no-plain] [--timeout SEC] [--threads N] [--json] [-q]\n" \
	"       cdm-bench sd --estimate [--resolution 256|512] [--net loopback|lan|wan]\n"      \
	"                 [--protocols S] [--max-elems N] [--json] [-q]"

static void usage(FILE *f)
{
	fprintf(f, "usage: %s\n"
		   "  ops   bytes per element, rounds, median time and max error of each\n"
		   "        operation under each protocol suite (three parties in threads)\n"
		   "  gemm  ring (uint64) GEMM against float32 GEMM of the same shape\n"
		   "  model whole secure sampling with three cdm-party processes per suite:\n"
		   "        time, bytes, rounds per layer type, peak memory, ratios against spu\n"
		   "        and against the plaintext float32 sampling (see cdm-bench(1))\n"
		   "  --n N            elements per operation (default 100000)\n"
		   "  --cols C         row length of max, softmax and groupnorm (default 196,\n"
		   "                   2..16384; softmax rows of 4096 are SD 1.5's attention)\n"
		   "  --reps R         timed runs, median reported (default 5, at least 5)\n"
		   "  --protocols L    comma list of suites (ops: cdm,spu,cipherdm; model: cdm,spu)\n"
		   "  --ops L          comma list of operations (default all: mul, trunc, mul_trunc,\n"
		   "                   lt, select, relu, max, exp, reciprocal, rsqrt, sigmoid, tanh,\n"
		   "                   silu, gelu, mish, softplus, softmax, groupnorm)\n"
		   "  --threads N      threads for large ring GEMMs and PRG expansion (default 1;\n"
		   "                   model: passed to each cdm-party); results do not change\n"
		   "  --json           machine-readable output (SPEC section 7)\n"
		   "  model: -m MODEL  diffusers model folder\n"
		   "  --sampler S      ddim (default), ddpm or dpmpp; --steps N (sampler default;\n"
		   "                   --steps 1 with ddim measures one secure UNet call)\n"
		   "  --batch B        images per run (default 1); --label N (3), --seed S (1)\n"
		   "  --net N          loopback (default), lan (1 Gbit/s, 0.2 ms RTT) or\n"
		   "                   wan (100 Mbit/s, 20 ms RTT): network namespaces, needs root\n"
		   "  --runs R         repetitions, medians reported (default 3)\n"
		   "  --keep DIR       keep shares, x_T, output shares, stats and party logs in DIR\n"
		   "  --no-plain       skip the plaintext float32 timing\n"
		   "  --timeout SEC    kill a run that takes longer (default 3600)\n"
		   "  -q               no progress on stderr\n"
		   "  sd --estimate    one real-sized instance of every distinct SD 1.5 block\n"
		   "                   (UNet, VAE decoder, CLIP) on shares, projected to a UNet\n"
		   "                   step, a 50-step image with guidance, the VAE decode and the\n"
		   "                   text encoder at 256 and 512 (or --resolution); --net picks\n"
		   "                   the projected network column (LAN/WAN from bytes and rounds);\n"
		   "                   --max-elems N: blocks above N elements run on 1/2^k of their\n"
		   "                   rows, scaled (default 2097152)\n",
		SYNOPSIS);
}

/* Split a comma list in place into at most cap items. */
static int split(char *s, char **items, int cap)
{
	int n = 0;
	for (char *t = strtok(s, ","); t; t = strtok(NULL, ","))
		if (n < cap)
			items[n++] = t;
		else
			return -1;
	return n;
}

/* --threads N for ops and gemm: the pool of this process. */
static int set_threads(const char *arg, struct cdm_err *err)
{
	long long v;
	CDM_TRY(cdm_cli_int("--threads", arg, 1, CDM_THREADS_MAX, &v, err));
	return cdm_ring_threads_set((int)v, err);
}

static void print_json_num(double v)
{
	if (v == 0 || (v >= 1e-3 && v < 1e6))
		printf("%.6g", v);
	else
		printf("%.3e", v);
}

static int cmd_ops(int argc, char **argv)
{
	static const struct option lo[] = {
		{"cols", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'}, {"n", required_argument, NULL, 'n'},
		{"ops", required_argument, NULL, 'o'},
		{"protocols", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
		{"reps", required_argument, NULL, 'r'}, {"threads", required_argument, NULL, 't'},
		{0, 0, 0, 0}};
	long long n = 100000, reps = 5, cols = 196;
	int json = 0, quiet = 0, c;
	char pbuf[256] = "cdm,spu,cipherdm", obuf[512] = "";
	struct cdm_err err = {0};
	while ((c = getopt_long(argc, argv, "c:hjn:o:p:qr:t:", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (cdm_cli_int("--cols", optarg, 2, 16384, &cols, &err) < 0)
				return cdm_cli_fail(PROG, &err);
			break;
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 'n':
			if (cdm_cli_int("--n", optarg, 1, 10000000, &n, &err) < 0)
				return cdm_cli_fail(PROG, &err);
			break;
		case 'o': snprintf(obuf, sizeof obuf, "%s", optarg); break;
		case 'p': snprintf(pbuf, sizeof pbuf, "%s", optarg); break;
		case 'q': quiet = 1; break;
		case 'r':
			if (cdm_cli_int("--reps", optarg, 5, 1000, &reps, &err) < 0)
				return cdm_cli_fail(PROG, &err);
			break;
		case 't':
			if (set_threads(optarg, &err) < 0)
				return cdm_cli_fail(PROG, &err);
			break;
		default: return cdm_cli_usage_error(PROG, SYNOPSIS, "unknown option");
		}
	}
	if (optind < argc)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "unexpected argument");
	char *suites[8], *ops[32];
	int ns = split(pbuf, suites, 8), no = 0;
	if (ns <= 0)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "--protocols: empty or too long list");
	for (int i = 0; i < ns; i++)
		if (cdm_suite_parse(suites[i]) < 0) {
			fprintf(stderr, "%s: --protocols: unknown suite '%s' (cdm, spu, cipherdm)\n", PROG,
				suites[i]);
			return 1;
		}
	if (obuf[0]) {
		no = split(obuf, ops, 32);
		if (no <= 0)
			return cdm_cli_usage_error(PROG, SYNOPSIS, "--ops: empty or too long list");
		for (int i = 0; i < no; i++) {
			int ok = 0;
			for (int k = 0; cdm_bench_op_names[k]; k++)
				ok |= strcmp(ops[i], cdm_bench_op_names[k]) == 0;
			if (!ok) {
				fprintf(stderr, "%s: --ops: unknown operation '%s'\n", PROG, ops[i]);
				return 1;
			}
		}
	} else
		for (no = 0; cdm_bench_op_names[no]; no++)
			ops[no] = (char *)cdm_bench_op_names[no];
	if (json)
		printf("[");
	else
		printf("%-11s %-9s %9s %12s %7s %10s %11s %11s  %s\n", "op", "suite", "n",
		       "bytes/elem", "rounds", "seconds", "max_abs", "max_rel", "domain");
	int first = 1;
	for (int i = 0; i < no; i++)
		for (int k = 0; k < ns; k++) {
			struct cdm_bench_op_result r;
			if (!quiet)
				fprintf(stderr, "%s: %s (%s)...\n", PROG, ops[i], suites[k]);
			int rc = cdm_bench_op(ops[i], cdm_suite_parse(suites[k]), (size_t)n, (size_t)cols,
					      (int)reps, &r, &err);
			if (rc < 0) {
				if (json)
					printf("]\n");
				return cdm_cli_fail(PROG, &err);
			}
			if (json) {
				printf("%s\n  {\"op\": \"%s\", \"suite\": \"%s\", \"n\": %zu, \"bytes_per_elem\": ",
				       first ? "" : ",", r.op, r.suite, r.n);
				print_json_num(r.bytes_per_elem);
				printf(", \"rounds\": %llu, \"seconds\": ", (unsigned long long)r.rounds);
				print_json_num(r.seconds);
				printf(", \"max_abs_err\": ");
				print_json_num(r.max_abs_err);
				printf(", \"max_rel_err\": ");
				print_json_num(r.max_rel_err);
				printf(", \"domain\": [%g, %g]", r.domain[0], r.domain[1]);
				if (r.cols)
					printf(", \"cols\": %zu", r.cols);
				printf("}");
			} else {
				printf("%-11s %-9s %9zu %12.1f %7llu %10.4f %11.2e %11.2e  [%g, %g]", r.op,
				       r.suite, r.n, r.bytes_per_elem, (unsigned long long)r.rounds,
				       r.seconds, r.max_abs_err, r.max_rel_err, r.domain[0], r.domain[1]);
				if (r.cols)
					printf(" rows of %zu", r.cols);
				printf("\n");
			}
			fflush(stdout);
			first = 0;
		}
	if (json)
		printf("\n]\n");
	return 0;
}

static int cmd_gemm(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
					   {"json", no_argument, NULL, 'j'},
					   {"threads", required_argument, NULL, 't'}, {0, 0, 0, 0}};
	int json = 0, c;
	struct cdm_err err = {0};
	while ((c = getopt_long(argc, argv, "hjt:", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 't') {
			if (set_threads(optarg, &err) < 0)
				return cdm_cli_fail(PROG, &err);
			continue;
		}
		if (c != 'j')
			return cdm_cli_usage_error(PROG, SYNOPSIS, "unknown option");
		json = 1;
	}
	if (optind < argc)
		return cdm_cli_usage_error(PROG, SYNOPSIS, "unexpected argument");
	struct cdm_bench_gemm_result r;
	if (cdm_bench_gemm(CDM_BENCH_GEMM_CONV_M, CDM_BENCH_GEMM_CONV_K, CDM_BENCH_GEMM_CONV_N,
			   CDM_BENCH_GEMM_REPS, &r, &err) < 0)
		return cdm_cli_fail(PROG, &err);
	if (json)
		printf("{\"ring_gops\": %.4g, \"f32_gflops\": %.4g, \"ratio\": %.4g, \"m\": %zu, "
		       "\"k\": %zu, \"n\": %zu, \"threads\": %d}\n",
		       r.ring_gops, r.f32_gflops, r.ratio, r.m, r.k, r.n, cdm_ring_threads());
	else
		printf("GEMM %zu x %zu x %zu: ring %.2f Gop/s (%d thread%s), float32 %.2f GFLOP/s "
		       "(1 thread), ratio %.3f\n",
		       r.m, r.k, r.n, r.ring_gops, cdm_ring_threads(),
		       cdm_ring_threads() > 1 ? "s" : "", r.f32_gflops, r.ratio);
	return 0;
}

/* ---- model ------------------------------------------------------------------------ */

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { stop_flag = sig; }

static void progress(void *arg, const char *msg) { fprintf(stderr, "%s: %s\n", PROG, msg); }

/* The folder of this executable, where cdm-party is built too. */
static int bin_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0 || (size_t)n >= size - 1)
		return -1;
	buf[n] = 0;
	char *slash = strrchr(buf, '/');
	if (!slash)
		return -1;
	*slash = 0;
	return 0;
}

#define MODEL_SYNOPSIS "cdm-bench model -m MODEL [options] (see cdm-bench --help)"

static int cmd_model(int argc, char **argv)
{
	enum { O_SAMPLER = 256, O_STEPS, O_BATCH, O_NET, O_RUNS, O_LABEL, O_SEED, O_KEEP,
	       O_NOPLAIN, O_TIMEOUT, O_THREADS };
	static const struct option lo[] = {
		{"batch", required_argument, NULL, O_BATCH}, {"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'}, {"keep", required_argument, NULL, O_KEEP},
		{"label", required_argument, NULL, O_LABEL}, {"model", required_argument, NULL, 'm'},
		{"net", required_argument, NULL, O_NET}, {"no-plain", no_argument, NULL, O_NOPLAIN},
		{"protocols", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
		{"runs", required_argument, NULL, O_RUNS}, {"sampler", required_argument, NULL, O_SAMPLER},
		{"seed", required_argument, NULL, O_SEED}, {"steps", required_argument, NULL, O_STEPS},
		{"threads", required_argument, NULL, O_THREADS},
		{"timeout", required_argument, NULL, O_TIMEOUT}, {0, 0, 0, 0}};
	struct cdm_bench_model_opts o = {.sampler = CDM_SAMPLER_DDIM, .batch = 1, .label = 3,
					 .seed = 1, .runs = 3, .stop = &stop_flag};
	long long v;
	int json = 0, quiet = 0, c;
	char pbuf[256] = "cdm,spu", dir[4096];
	struct cdm_err err = {0};
	opterr = 0; /* one error line: ours */
	while ((c = getopt_long(argc, argv, "hjm:p:q", lo, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 'm': o.model_dir = optarg; break;
		case 'p': snprintf(pbuf, sizeof pbuf, "%s", optarg); break;
		case 'q': quiet = 1; break;
		case O_BATCH: rc = cdm_cli_int("--batch", optarg, 1, 1024, &v, &err); o.batch = v; break;
		case O_KEEP: o.keep_dir = optarg; break;
		case O_LABEL: rc = cdm_cli_int("--label", optarg, 0, 1 << 20, &v, &err); o.label = v; break;
		case O_NET: rc = cdm_bench_net_parse(optarg, &o.net, &err); break;
		case O_NOPLAIN: o.no_plain = 1; break;
		case O_RUNS: rc = cdm_cli_int("--runs", optarg, 1, 101, &v, &err); o.runs = (int)v; break;
		case O_SAMPLER:
			if (cdm_sampler_kind_parse(optarg, &o.sampler) < 0)
				rc = cdm_fail(&err, CDM_EINPUT, "--sampler: unknown sampler '%s' "
					      "(ddim, ddpm, dpmpp)", optarg);
			break;
		case O_SEED: rc = cdm_cli_int("--seed", optarg, 0, INT64_MAX, &v, &err); o.seed = (uint64_t)v; break;
		case O_STEPS: rc = cdm_cli_int("--steps", optarg, 1, 100000, &v, &err); o.steps = v; break;
		case O_THREADS: rc = cdm_cli_int("--threads", optarg, 1, CDM_THREADS_MAX, &v, &err); o.threads = (int)v; break;
		case O_TIMEOUT: rc = cdm_cli_int("--timeout", optarg, 1, 1 << 30, &v, &err); o.timeout_s = (int)v; break;
		default:
			return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS,
						   "unknown option or missing argument");
		}
		if (rc < 0)
			return cdm_cli_fail(PROG, &err);
	}
	if (optind < argc)
		return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS, "unexpected argument");
	if (!o.model_dir)
		return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS, "model: -m MODEL is required");
	char *names[CDM_BENCH_MAX_SUITES + 1];
	enum cdm_suite suites[CDM_BENCH_MAX_SUITES];
	int ns = split(pbuf, names, CDM_BENCH_MAX_SUITES);
	if (ns <= 0)
		return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS, "--protocols: empty or too long list");
	for (int i = 0; i < ns; i++) {
		if (cdm_suite_parse(names[i]) < 0) {
			fprintf(stderr, "%s: --protocols: unknown suite '%s' (cdm, spu, cipherdm)\n", PROG,
				names[i]);
			return 1;
		}
		suites[i] = (enum cdm_suite)cdm_suite_parse(names[i]);
	}
	o.suites = suites;
	o.nsuites = ns;
	if (o.net != CDM_BENCH_LOOPBACK &&
	    cdm_netns_check(o.net == CDM_BENCH_LAN ? "--net lan" : "--net wan", &err) < 0)
		return cdm_cli_fail(PROG, &err);
	if (bin_dir(dir, sizeof dir) < 0) {
		fprintf(stderr, "%s: cannot locate my own binary (/proc/self/exe)\n", PROG);
		return 1;
	}
	o.bin_dir = dir;
	if (!quiet)
		o.progress = progress;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	struct cdm_bench_model_result *r = calloc(1, sizeof *r);
	if (!r)
		return 1;
	int rc = cdm_bench_model(&o, r, &err);
	char *out = NULL;
	if (rc == 0 && !(out = json ? cdm_bench_model_json(r, &err) : cdm_bench_model_table(r, &err)))
		rc = CDM_ENOMEM;
	if (out)
		printf("%s\n", out);
	free(out);
	int st = rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
	if (rc < 0 && r->failed_party >= 0) {
		size_t n = strlen(r->failed_stderr);
		fprintf(stderr, "%s: party %d's stderr (last lines):\n%s%s", PROG, r->failed_party,
			r->failed_stderr, n && r->failed_stderr[n - 1] != '\n' ? "\n" : "");
	}
	free(r);
	return st;
}

/* ---- sd ------------------------------------------------------------------------------ */

#define SD_SYNOPSIS "cdm-bench sd --estimate [--resolution 256|512] [--net loopback|lan|wan] " \
		    "[--protocols S] [--max-elems N] [--json] [-q]"

static int cmd_sd(int argc, char **argv)
{
	enum { O_EST = 256, O_RES, O_NET, O_MAX };
	static const struct option lo[] = {
		{"estimate", no_argument, NULL, O_EST}, {"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'}, {"max-elems", required_argument, NULL, O_MAX},
		{"net", required_argument, NULL, O_NET}, {"protocols", required_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'}, {"resolution", required_argument, NULL, O_RES},
		{0, 0, 0, 0}};
	struct cdm_bench_sd_opts o = {.suite = CDM_SUITE_CDM, .stop = &stop_flag};
	struct cdm_err err = {0};
	int json = 0, quiet = 0, est = 0, c;
	long long v;
	enum cdm_bench_net net;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hjp:q", lo, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 'p':
			if (cdm_suite_parse(optarg) < 0)
				rc = cdm_fail(&err, CDM_EINPUT, "--protocols: unknown suite '%s' (cdm, spu, "
					      "cipherdm)", optarg);
			o.suite = (enum cdm_suite)cdm_suite_parse(optarg);
			break;
		case 'q': quiet = 1; break;
		case O_EST: est = 1; break;
		case O_MAX: rc = cdm_cli_int("--max-elems", optarg, 4096, (long long)1 << 34, &v, &err); o.max_elems = v; break;
		case O_NET: rc = cdm_bench_net_parse(optarg, &net, &err); o.only_net = 1 + (int)net; break;
		case O_RES:
			rc = cdm_cli_int("--resolution", optarg, 256, 512, &v, &err);
			if (rc == 0 && v != 256 && v != 512)
				rc = cdm_fail(&err, CDM_EINPUT, "--resolution: %lld, expected 256 or 512", v);
			o.resolution = (int)v;
			break;
		default: return cdm_cli_usage_error(PROG, SD_SYNOPSIS, "unknown option or missing argument");
		}
		if (rc < 0)
			return cdm_cli_fail(PROG, &err);
	}
	if (optind < argc)
		return cdm_cli_usage_error(PROG, SD_SYNOPSIS, "unexpected argument");
	if (!est)
		return cdm_cli_usage_error(PROG, SD_SYNOPSIS, "sd: --estimate is required");
	if (!quiet)
		o.progress = progress;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct cdm_bench_sd_result *r = NULL;
	char *out = NULL;
	int rc = cdm_bench_sd_estimate(&o, &r, &err);
	if (rc == 0)
		rc = json ? cdm_bench_sd_json(r, &out, &err) : cdm_bench_sd_table(r, &out, &err);
	if (rc == 0)
		fputs(out, stdout);
	cdm_free(out);
	cdm_bench_sd_free(r);
	return rc < 0 ? cdm_cli_fail(PROG, &err) : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS, "missing subcommand");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "ops") == 0)
		return cmd_ops(argc - 1, argv + 1);
	if (strcmp(argv[1], "gemm") == 0)
		return cmd_gemm(argc - 1, argv + 1);
	if (strcmp(argv[1], "model") == 0)
		return cmd_model(argc - 1, argv + 1);
	if (strcmp(argv[1], "sd") == 0)
		return cmd_sd(argc - 1, argv + 1);
	return cdm_cli_usage_error(PROG, MODEL_SYNOPSIS, "unknown subcommand (ops, gemm, model, sd)");
}
