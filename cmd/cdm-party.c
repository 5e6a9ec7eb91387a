/*
 * cdm-party: one of the three computing parties. Checks its share files,
 * connects to the other two (TLS when given certificates), runs the whole
 * sampling loop on shares (lib/sample) and writes its output share; with
 * --stats, a JSON cost report (SPEC section 7).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fmt/st.h"
#include "model/config.h"
#include "net/net.h"
#include "ring/pool.h"
#include "sample/sample.h"

#define PROG "cdm-party"
#define SYNOPSIS                                                                          \
	PROG " --id I --peers H0:P0,H1:P1,H2:P2 --model M.I --input X.I -o OUT.I "        \
	     "[--sampler ddpm|ddim|dpmpp] [--steps N] [--eta E] [--protocols cdm|spu|cipherdm] " \
	     "[--tls-cert C --tls-key K --tls-ca CA] [--timeout SEC] [--stats FILE.json] "          \
	     "[--checkpoint DIR [--checkpoint-every K] [--resume] [--keep-checkpoints]] "       \
	     "[--public-model DIR] [--guidance S] [--threads N] [-q]"

static const char help[] =
	"usage: " PROG " --id I --peers H0:P0,H1:P1,H2:P2 --model M.I --input X.I -o OUT.I\n"
	"                 [--sampler ddpm|ddim|dpmpp] [--steps N] [--eta E]\n"
	"                 [--protocols cdm|spu|cipherdm] [--tls-cert C --tls-key K --tls-ca CA]\n"
	"                 [--timeout SEC] [--stats FILE.json] [--threads N]\n"
	"                 [--checkpoint DIR [--checkpoint-every K] [--resume]\n"
	"                  [--keep-checkpoints]] [-q]\n"
	"       " PROG " ... --public-model MODEL_DIR --input X.I -o OUT.I ...\n"
	"\n"
	"Party I of a secure sampling run: reads its model share and input share, connects\n"
	"to the two other parties, runs the sampler on secret shares and writes its share\n"
	"of the image to OUT.I (any two output shares reveal it: cdm-reveal). The three\n"
	"parties must be started with the same sampler, steps, eta and protocols.\n"
	"\n"
	"  -i, --id I            this party: 0, 1 or 2\n"
	"  -p, --peers LIST      HOST:PORT of parties 0,1,2 (own entry: where to listen)\n"
	"  -m, --model FILE      this party's model share (cdm-share MODEL_DIR)\n"
	"  -x, --input FILE      this party's input share (cdm-share --input)\n"
	"  -o, --output FILE     output share to write (mode 0600, atomic)\n"
	"      --sampler S       ddim (default), ddpm or dpmpp (DPM-Solver++ 2M)\n"
	"      --steps N         inference steps (default: ddpm all, ddim 50, dpmpp 20)\n"
	"      --eta E           DDIM eta (default 0; > 0 draws joint noise every step)\n"
	"      --protocols P     cdm (default), spu (SPU-style baseline) or cipherdm\n"
	"      --tls-cert C, --tls-key K, --tls-ca CA\n"
	"                        TLS 1.3 with mutual authentication (all three or none)\n"
	"      --timeout SEC     give up when a peer is silent this long (default 60)\n"
	"      --stats FILE      write time, bytes and rounds per layer type as JSON\n"
	"      --checkpoint DIR  save this party's state share in DIR every K steps\n"
	"                        (party<I>-step<N>.ckpt, 0600, atomic; the newest two kept)\n"
	"      --checkpoint-every K  (default 5)\n"
	"      --resume          continue from the newest checkpoint step all three parties\n"
	"                        hold in their DIR (same result as an uninterrupted run)\n"
	"      --keep-checkpoints  keep this run's checkpoints once all three parties\n"
	"                        have written their output (default: removed)\n"
	"      --guidance S      Stable Diffusion shares: classifier-free guidance scale\n"
	"                        (default 7.5, as diffusers; S <= 1: the prompt alone)\n"
	"      --public-model DIR  weights are public: read the plaintext model folder\n"
	"                        DIR (instead of --model); only the input stays secret\n"
	"      --threads N       threads for large ring products and PRG expansion\n"
	"                        (default 1; results are identical for every N)\n"
	"  -q, --quiet           no progress on stderr\n"
	"  -h, --help            this help\n"
	"\n"
	"Exit status: 0 success, 1 bad usage or input file, 2 network or protocol failure.\n";

enum { O_SAMPLER = 256, O_STEPS, O_ETA, O_PROT, O_CERT, O_KEY, O_CA, O_TIMEOUT, O_STATS,
       O_TEST_SEED, O_CKPT, O_CKPT_EVERY, O_RESUME, O_PUBLIC, O_GUIDANCE, O_THREADS,
       O_KEEP_CKPT };

static const struct option longopts[] = {
	{"checkpoint", required_argument, NULL, O_CKPT},
	{"checkpoint-every", required_argument, NULL, O_CKPT_EVERY},
	{"eta", required_argument, NULL, O_ETA},
	{"guidance", required_argument, NULL, O_GUIDANCE},
	{"help", no_argument, NULL, 'h'},
	{"id", required_argument, NULL, 'i'},
	{"input", required_argument, NULL, 'x'},
	{"keep-checkpoints", no_argument, NULL, O_KEEP_CKPT},
	{"model", required_argument, NULL, 'm'},
	{"output", required_argument, NULL, 'o'},
	{"peers", required_argument, NULL, 'p'},
	{"protocols", required_argument, NULL, O_PROT},
	{"public-model", required_argument, NULL, O_PUBLIC},
	{"quiet", no_argument, NULL, 'q'},
	{"resume", no_argument, NULL, O_RESUME},
	{"sampler", required_argument, NULL, O_SAMPLER},
	{"stats", required_argument, NULL, O_STATS},
	{"steps", required_argument, NULL, O_STEPS},
	{"test-noise-seed", required_argument, NULL, O_TEST_SEED},
	{"threads", required_argument, NULL, O_THREADS},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"tls-ca", required_argument, NULL, O_CA},
	{"tls-cert", required_argument, NULL, O_CERT},
	{"tls-key", required_argument, NULL, O_KEY},
	{NULL, 0, NULL, 0},
};

struct opts {
	int id, quiet, steps_set, keep_ckpt;
	int threads; /* --threads; 0 = not given (1) */
	const char *model, *input, *output, *stats;
	char hosts[CDM_PARTIES][256];
	struct cdm_net_opts net;
	struct cdm_sample_opts run;
	uint8_t test_seed[CDM_SEED_BYTES];
};

static int parse_peers(struct opts *o, const char *s, struct cdm_err *err)
{
	const char *p = s;
	for (int i = 0; i < CDM_PARTIES; i++) {
		size_t len = strcspn(p, ",");
		const char *colon = NULL;
		for (const char *q = p; q < p + len; q++)
			if (*q == ':')
				colon = q;
		if (!colon || colon == p || (size_t)(colon - p) >= sizeof o->hosts[i] ||
		    (i < 2 && p[len] != ',') || (i == 2 && p[len] != 0))
			return cdm_fail(err, CDM_EINPUT, "--peers: '%s' is not H0:P0,H1:P1,H2:P2", s);
		char port[16];
		size_t pl = (size_t)(p + len - colon - 1);
		if (pl == 0 || pl >= sizeof port)
			return cdm_fail(err, CDM_EINPUT, "--peers: bad port in '%s'", s);
		memcpy(port, colon + 1, pl);
		port[pl] = 0;
		long long v;
		CDM_TRY(cdm_cli_int("--peers port", port, 1, 65535, &v, err));
		memcpy(o->hosts[i], p, (size_t)(colon - p));
		o->hosts[i][colon - p] = 0;
		if (o->hosts[i][0] == '[' && o->hosts[i][colon - p - 1] == ']') { /* [v6] */
			memmove(o->hosts[i], o->hosts[i] + 1, (size_t)(colon - p));
			o->hosts[i][colon - p - 2] = 0;
		}
		o->net.host[i] = o->hosts[i];
		o->net.port[i] = (int)v;
		p += len + 1;
	}
	return 0;
}

static int parse_hex_seed(uint8_t *out, const char *s, struct cdm_err *err)
{
	if (strlen(s) != 2 * CDM_SEED_BYTES)
		return cdm_fail(err, CDM_EINPUT, "--test-noise-seed: need 32 hex digits");
	for (int i = 0; i < CDM_SEED_BYTES; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return cdm_fail(err, CDM_EINPUT, "--test-noise-seed: not hex");
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int parse(int argc, char **argv, struct opts *o, struct cdm_err *err)
{
	long long v;
	double d;
	int c, have_id = 0, have_peers = 0;
	o->run.sampler = CDM_SAMPLER_DDIM;
	o->run.suite = CDM_SUITE_CDM;
	o->run.guidance = 7.5; /* diffusers' StableDiffusionPipeline default */
	while ((c = getopt_long(argc, argv, "hi:m:o:p:qx:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(help, stdout); exit(0);
		case 'i':
			CDM_TRY(cdm_cli_int("--id", optarg, 0, 2, &v, err));
			o->id = (int)v, have_id = 1;
			break;
		case 'm': o->model = optarg; break;
		case 'o': o->output = optarg; break;
		case 'p': CDM_TRY(parse_peers(o, optarg, err)); have_peers = 1; break;
		case 'q': o->quiet = 1; break;
		case 'x': o->input = optarg; break;
		case O_SAMPLER:
			if (cdm_sampler_kind_parse(optarg, &o->run.sampler) < 0)
				return cdm_fail(err, CDM_EINPUT, "--sampler: '%s' is not ddpm, ddim or "
						"dpmpp", optarg);
			break;
		case O_STEPS:
			CDM_TRY(cdm_cli_int("--steps", optarg, 1, 100000, &v, err));
			o->run.steps = v, o->steps_set = 1;
			break;
		case O_ETA:
			CDM_TRY(cdm_cli_double("--eta", optarg, 0, 10, &d, err));
			o->run.eta = d;
			break;
		case O_PROT: {
			int s = cdm_suite_parse(optarg);
			if (s < 0)
				return cdm_fail(err, CDM_EINPUT, "--protocols: '%s' is not cdm, spu or "
						"cipherdm", optarg);
			o->run.suite = (enum cdm_suite)s;
			break;
		}
		case O_CERT: o->net.tls_cert = optarg; break;
		case O_KEY: o->net.tls_key = optarg; break;
		case O_CA: o->net.tls_ca = optarg; break;
		case O_TIMEOUT:
			CDM_TRY(cdm_cli_double("--timeout", optarg, 0.1, 86400, &d, err));
			o->net.timeout_ms = (int)(d * 1000);
			o->net.connect_timeout_ms = o->net.timeout_ms;
			break;
		case O_STATS: o->stats = optarg; break;
		case O_CKPT: o->run.checkpoint_dir = optarg; break;
		case O_CKPT_EVERY:
			CDM_TRY(cdm_cli_int("--checkpoint-every", optarg, 1, 1000000, &v, err));
			o->run.checkpoint_every = v;
			break;
		case O_RESUME: o->run.resume = 1; break;
		case O_KEEP_CKPT: o->keep_ckpt = 1; break;
		case O_PUBLIC: o->run.public_model = optarg; break;
		case O_GUIDANCE:
			CDM_TRY(cdm_cli_double("--guidance", optarg, -1000, 1000, &d, err));
			o->run.guidance = d;
			break;
		case O_THREADS:
			CDM_TRY(cdm_cli_int("--threads", optarg, 1, CDM_THREADS_MAX, &v, err));
			o->threads = (int)v;
			break;
		case O_TEST_SEED:
			CDM_TRY(parse_hex_seed(o->test_seed, optarg, err));
			o->run.noise_seed = o->test_seed;
			break;
		default: return cdm_fail(err, CDM_EINPUT, "unknown option");
		}
	}
	if (optind != argc)
		return cdm_fail(err, CDM_EINPUT, "unexpected argument '%s'", argv[optind]);
	if (!have_id || !have_peers || !(o->model || o->run.public_model) || !o->input ||
	    !o->output)
		return cdm_fail(err, CDM_EINPUT, "--id, --peers, --model (or --public-model), "
				"--input and -o are required");
	if (o->model && o->run.public_model)
		return cdm_fail(err, CDM_EINPUT, "--model and --public-model exclude each other");
	if ((o->run.resume || o->run.checkpoint_every || o->keep_ckpt) && !o->run.checkpoint_dir)
		return cdm_fail(err, CDM_EINPUT, "--resume, --checkpoint-every and "
				"--keep-checkpoints need --checkpoint");
	int ntls = !!o->net.tls_cert + !!o->net.tls_key + !!o->net.tls_ca;
	if (ntls != 0 && ntls != 3)
		return cdm_fail(err, CDM_EINPUT, "--tls-cert, --tls-key and --tls-ca go together");
	o->net.id = o->id;
	return 0;
}

/* ---- progress and stats --------------------------------------------------------- */

struct progress {
	double t0;
	cdm_net *net;
};

static void show_progress(void *arg, int64_t k, int64_t n)
{
	struct progress *p = arg;
	struct cdm_net_stats s;
	cdm_net_get_stats(p->net, &s);
	double el = cdm_now() - p->t0, eta = el / (double)k * (double)(n - k);
	fprintf(stderr, "\r" PROG ": step %lld/%lld  %.1fs elapsed  ETA %.0fs  %.1f MB sent ",
		(long long)k, (long long)n, el, eta, s.bytes_sent / 1e6);
	if (k == n)
		fputc('\n', stderr);
}

static int write_stats(const char *path, const struct opts *o, cdm_mpc *m,
		       const struct cdm_sample_result *res, int64_t steps, double secs,
		       struct cdm_err *err)
{
	struct cdm_net_stats s;
	const struct cdm_cost *cost = res->cost;
	size_t nc = res->ncost;
	cdm_net_get_stats(cdm_mpc_net(m), &s);
	json_t *root = json_object(), *by = json_object();
	json_object_set_new(root, "suite", json_string(cdm_suite_name(o->run.suite)));
	json_object_set_new(root, "sampler", json_string(cdm_sampler_kind_name(o->run.sampler)));
	json_object_set_new(root, "steps", json_integer(steps));
	json_object_set_new(root, "seconds", json_real(secs));
	json_object_set_new(root, "bytes_sent", json_integer((json_int_t)s.bytes_sent));
	json_object_set_new(root, "rounds", json_integer((json_int_t)s.rounds));
	json_object_set_new(root, "peak_rss_bytes", json_integer((json_int_t)cdm_peak_rss()));
	json_object_set_new(root, "party", json_integer(o->id));
	json_object_set_new(root, "public_model", json_boolean(o->run.public_model != NULL));
	json_object_set_new(root, "resumed_from", json_integer(res->resumed_from));
	for (size_t i = 0; i < nc; i++) {
		if (!cost[i].rounds && !cost[i].bytes_sent)
			continue; /* local-only labels: skipping them by a time
				   * threshold would make the set of keys vary run to run */
		json_t *e = json_object();
		json_object_set_new(e, "seconds", json_real(cost[i].seconds));
		json_object_set_new(e, "bytes_sent", json_integer((json_int_t)cost[i].bytes_sent));
		json_object_set_new(e, "rounds", json_integer((json_int_t)cost[i].rounds));
		json_object_set_new(by, cost[i].label, e);
	}
	json_object_set_new(root, "by_layer", by);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return cdm_fail(err, CDM_ENOMEM, "%s: cannot format the statistics", path);
	size_t len = strlen(text);
	char *buf = cdm_alloc(len + 2, 1, err);
	int rc = CDM_ENOMEM;
	if (buf) {
		memcpy(buf, text, len);
		buf[len] = '\n';
		rc = cdm_write_file_atomic(path, buf, len + 1, 0644, err);
	}
	free(text);
	cdm_free(buf);
	return rc;
}

/* ---- main ---------------------------------------------------------------------------- */

/* DDPM's default step count: every training timestep of the scheduler. */
static int ddpm_steps(struct opts *o, const cdm_share *model, struct cdm_err *err)
{
	struct cdm_sched_config sc;
	int rc = 0;
	if (o->run.public_model) {
		struct cdm_model_paths p;
		rc = cdm_model_locate(&p, o->run.public_model, err);
		if (rc == 0)
			rc = cdm_sched_config_load(&sc, CDM_SAMPLER_DDPM, p.sched_config, err);
	} else {
		const char *t = cdm_share_meta(model, "scheduler_config");
		cdm_sched_config_default(&sc, CDM_SAMPLER_DDPM);
		if (t)
			rc = cdm_sched_config_parse(&sc, CDM_SAMPLER_DDPM, t, strlen(t), o->model,
						    err);
	}
	CDM_TRY(rc);
	o->run.steps = sc.num_train_timesteps;
	cdm_sched_config_clear(&sc);
	return 0;
}

static int run(struct opts *o, struct cdm_err *err)
{
	cdm_share *model = NULL, *input = NULL;
	cdm_net *net = NULL;
	cdm_mpc *m = NULL;
	struct cdm_sample_result res;
	memset(&res, 0, sizeof res);
	int rc = 0;
	if (o->model) {
		rc = cdm_share_open(&model, o->model, "model", err);
		if (rc == 0)
			rc = cdm_sample_check_share(model, o->id, "model", err);
	}
	if (rc == 0)
		rc = cdm_share_open(&input, o->input, "input", err);
	if (rc == 0)
		rc = cdm_sample_check_share(input, o->id, "input", err);
	if (rc == 0 && o->run.public_model) { /* a bad folder fails before connecting */
		struct cdm_model_paths mp;
		rc = cdm_model_locate(&mp, o->run.public_model, err);
	}
	if (rc == 0 && !o->steps_set) {
		o->run.steps = o->run.sampler == CDM_SAMPLER_DDIM ? 50
			     : o->run.sampler == CDM_SAMPLER_DPMPP ? 20 : 0;
		if (!o->run.steps) { /* DDPM: every training timestep */
			rc = ddpm_steps(o, model, err);
		}
	}
	if (rc == 0 && o->run.checkpoint_dir && mkdir(o->run.checkpoint_dir, 0700) < 0 &&
	    errno != EEXIST)
		rc = cdm_fail(err, CDM_EINPUT, "--checkpoint %s: %s", o->run.checkpoint_dir,
			      strerror(errno));
	if (rc == 0 && o->threads > 1)
		rc = cdm_ring_threads_set(o->threads, err);
	if (rc == 0)
		rc = cdm_net_connect(&net, &o->net, err);
	if (rc == 0 && cdm_net_warning(net))
		fprintf(stderr, PROG ": warning: %s\n", cdm_net_warning(net));
	struct cdm_mpc_opts mo = {.frac_bits = model ? model->frac_bits
						  : input ? input->frac_bits : 0};
	if (rc == 0)
		rc = cdm_mpc_new(&m, net, &mo, err);
	struct progress pg = {cdm_now(), net};
	if (rc == 0 && !o->quiet && isatty(2)) {
		o->run.progress = show_progress;
		o->run.progress_arg = &pg;
	}
	if (rc == 0)
		rc = cdm_sample_run(m, model, input, &o->run, &res, err);
	if (rc == 0 && res.resumed_from && !o->quiet)
		fprintf(stderr, PROG ": resumed from the checkpoint after step %lld\n",
			(long long)res.resumed_from);
	double secs = cdm_now() - pg.t0;
	int written = 0;
	if (rc == 0) {
		cdm_cli_block_signals(1);
		rc = cdm_sample_write_output(o->output, o->id, input->frac_bits, &res,
					     res.model_id, input->sharing_id, err);
		cdm_cli_block_signals(0);
		written = rc == 0;
	}
	if (rc == 0 && o->stats)
		rc = write_stats(o->stats, o, m, &res, o->run.steps, secs, err);
	if (written && o->run.checkpoint_dir) {
		/* the output is complete (even if --stats failed, the others wait
		 * for this round): a failure here only keeps the checkpoints */
		struct cdm_err e2 = {0};
		if (getenv("CDM_TEST_DIE_BEFORE_CHECKPOINT_ROUND")) /* fault injection, */
			_exit(9); /* tests/cli/resume.sh: a crash at the worst moment */
		if (cdm_sample_end_checkpoints(m, &o->run, &res, o->keep_ckpt, &e2) < 0)
			fprintf(stderr, PROG ": warning: %s; checkpoints in %s kept\n", e2.msg,
				o->run.checkpoint_dir);
	}
	cdm_sample_result_clear(&res);
	cdm_mpc_free(m);
	cdm_net_free(net);
	cdm_share_close(model);
	cdm_share_close(input);
	struct cdm_err ignored;
	cdm_ring_threads_set(1, &ignored); /* join the --threads workers */
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct cdm_err err = {0};
	memset(&o, 0, sizeof o);
	opterr = 0;
	if (parse(argc, argv, &o, &err) < 0) {
		if (!strcmp(err.msg, "unknown option"))
			snprintf(err.msg, sizeof err.msg, "unknown or incomplete option '%s'",
				 argv[optind - 1]);
		return cdm_cli_usage_error(PROG, SYNOPSIS, err.msg);
	}
	return run(&o, &err) < 0 ? cdm_cli_fail(PROG, &err) : 0;
}
