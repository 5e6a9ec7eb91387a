/*
 * bench/model: whole secure sampling runs with three real cdm-party
 * processes (cdm-bench model), per protocol suite, on loopback or on an
 * emulated LAN/WAN (lib/bench/netns.h), against the plaintext float32 time
 * of the same sampling.
 *
 * Owns: sharing the model and one input (fixed label and seed, so runs are
 * comparable) into a work directory, starting the parties (fork/exec of
 * <bin_dir>/cdm-party, inside the namespaces for lan/wan), waiting for them
 * with a deadline, reading their --stats JSON (SPEC section 7), medians over
 * runs, the plaintext timing, and rendering the result as a table or JSON.
 * Does not own: printing (the caller prints the strings it gets), signal
 * handlers (the caller passes a flag its handler sets; the run then stops
 * the parties, removes the namespaces and returns CDM_ENET "interrupted").
 *
 * Figures of one run, from the parties' stats files:
 *   bytes_sent  sum over the three parties (total traffic);
 *   rounds      maximum over the parties (they agree in practice);
 *   seconds     maximum over the parties of their own run time (connect
 *               excluded: it is what cdm-party reports);
 *   wall        spawn of the first party to exit of the last, as measured
 *               here (includes process start and share loading);
 *   layer seconds: mean over the three parties.
 * Over R runs: seconds and wall are medians; bytes and rounds are taken from
 * the last run and `deterministic` says whether every run agreed.
 * per_unet_call = (everything except "setup" and "sampler") / steps.
 * Plaintext: the same sampler, steps, batch, label and x_T through lib/model
 * + lib/sched on the float32 plain backend in this process (model loading
 * excluded), median over R runs.
 *
 * Thread-safety: one call at a time per process (it forks and waits for its
 * own children only).
 */
#ifndef CDM_BENCH_MODEL_H
#define CDM_BENCH_MODEL_H

#include <signal.h>
#include <stdint.h>

#include "../base/base.h"
#include "../nonlin/nonlin.h"
#include "../sched/sched.h"

#define CDM_BENCH_MAX_SUITES 4
#define CDM_BENCH_MAX_LAYERS 24

enum cdm_bench_net { CDM_BENCH_LOOPBACK, CDM_BENCH_LAN, CDM_BENCH_WAN };

struct cdm_bench_model_opts {
	const char *model_dir;       /* diffusers folder */
	const char *bin_dir;         /* folder holding cdm-party */
	enum cdm_sampler_kind sampler;
	int64_t steps;               /* 0 = the sampler's default (ddim 50, dpmpp 20, ddpm all) */
	const enum cdm_suite *suites;
	int nsuites;                 /* 1..CDM_BENCH_MAX_SUITES */
	int64_t batch;               /* >= 1 */
	int64_t label;               /* class label for every element (conditional models) */
	uint64_t seed;               /* x_T seed */
	int runs;                    /* >= 1 */
	enum cdm_bench_net net;
	int timeout_s;               /* per party run; 0 = 3600 */
	int frac_bits;               /* 0 = the library default */
	const char *keep_dir;        /* keep shares, x_T, outputs, stats here (created
				      * if missing); NULL = a temporary dir, removed */
	int no_plain;                /* skip the plaintext timing */
	int threads;                 /* cdm-party --threads; 0 or 1 = one thread */
	volatile sig_atomic_t *stop; /* non-zero: abort the run (may be NULL) */
	void (*progress)(void *arg, const char *msg);
	void *progress_arg;
};

struct cdm_bench_cost {
	double seconds;
	uint64_t bytes;  /* all parties */
	uint64_t rounds;
};

struct cdm_bench_layer {
	char name[32];
	struct cdm_bench_cost c;
};

struct cdm_bench_suite_result {
	enum cdm_suite suite;
	struct cdm_bench_cost total;      /* seconds: median of max party seconds */
	double wall_seconds;              /* median */
	int deterministic;                /* bytes and rounds equal in every run */
	uint64_t peak_rss[3];             /* per party, max over runs */
	struct cdm_bench_cost per_call;   /* per UNet call */
	int nlayers;
	struct cdm_bench_layer layers[CDM_BENCH_MAX_LAYERS];
};

struct cdm_bench_model_result {
	char model[256];
	char sampler[8];
	int64_t steps, batch, label;
	uint64_t seed;
	int runs;
	enum cdm_bench_net net;
	double rate_mbit, rtt_ms;         /* lan/wan link */
	char delay_mode[8];               /* "netem" or "relay" (lan/wan) */
	double plain_seconds;             /* median; < 0 if skipped */
	int nsuites;
	struct cdm_bench_suite_result suites[CDM_BENCH_MAX_SUITES];
	/* On a party failure (CDM_ENET/CDM_EPROTO/CDM_EINPUT from a party):
	 * which party and the tail of its stderr. */
	int failed_party;                 /* -1 if none */
	char failed_stderr[2048];
};

/* "loopback", "lan", "wan" -> *out; CDM_EINPUT otherwise. */
int cdm_bench_net_parse(const char *name, enum cdm_bench_net *out, struct cdm_err *err);
const char *cdm_bench_net_name(enum cdm_bench_net n);

/* Run the benchmark. Errors: CDM_EINPUT for a bad model or options,
 * CDM_ENET when a party failed (res->failed_party, res->failed_stderr),
 * timed out, or the run was interrupted. */
int cdm_bench_model(const struct cdm_bench_model_opts *o, struct cdm_bench_model_result *res,
		    struct cdm_err *err);

/* Render as text (a table per suite plus the comparison) or as one JSON
 * object (schema in man/cdm-bench.1). Returns a malloc'd string (free()),
 * NULL with err on allocation failure. */
char *cdm_bench_model_table(const struct cdm_bench_model_result *r, struct cdm_err *err);
char *cdm_bench_model_json(const struct cdm_bench_model_result *r, struct cdm_err *err);

#endif
