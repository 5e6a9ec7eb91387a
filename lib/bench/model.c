/*
 * model.c: cdm-bench model -- three cdm-party processes per suite and run,
 * their stats files, medians, the plaintext timing (see model.h).
 */
#define _GNU_SOURCE
#include "model.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../model/unet.h"
#include "../sample/sample.h"
#include "netns.h"

#define MAX_RUNS 101
#define GRACE_S 10.0 /* after one party fails, how long the others get to exit */

/* A cost table of one run (or of the medians). */
struct costs {
	int n;
	struct cdm_bench_layer l[CDM_BENCH_MAX_LAYERS];
};

/* What one run of one suite produced. */
struct run_out {
	struct cdm_bench_cost total;
	double wall;
	uint64_t rss[3];
	struct costs layers;
};

struct ctx {
	const struct cdm_bench_model_opts *o;
	struct cdm_bench_model_result *res;
	char dir[CDM_PATH_MAX];
	int tmp;              /* dir is ours to remove */
	int64_t steps;
	cdm_netns *ns;
};

/* Layer types in the order the table shows them; others follow as seen. */
static const char *const layer_order[] = {
	"setup", "embed", "conv", "linear", "groupnorm", "layernorm", "silu", "mish", "gelu",
	"act", "attention_matmul", "softmax", "attention", "elementwise", "sampler", NULL};

int cdm_bench_net_parse(const char *name, enum cdm_bench_net *out, struct cdm_err *err)
{
	static const char *const names[] = {"loopback", "lan", "wan"};
	for (int i = 0; i < 3; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (enum cdm_bench_net)i;
			return 0;
		}
	return cdm_fail(err, CDM_EINPUT, "--net: unknown network '%s' (loopback, lan, wan)", name);
}

const char *cdm_bench_net_name(enum cdm_bench_net n)
{
	return n == CDM_BENCH_LAN ? "lan" : n == CDM_BENCH_WAN ? "wan" : "loopback";
}

static void say(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct ctx *c, const char *fmt, ...)
{
	if (!c->o->progress)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->o->progress(c->o->progress_arg, msg);
}

static int path_in(const struct ctx *c, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int path_in(const struct ctx *c, char *buf, size_t size, const char *fmt, ...)
{
	int n = snprintf(buf, size, "%s/", c->dir);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)(n + m) >= size ? -1 : 0;
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++) /* insertion sort: n is small */
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the plaintext reference time ----------------------------------------------- */

static int64_t default_steps(enum cdm_sampler_kind k, const struct cdm_sched_config *sc)
{
	return k == CDM_SAMPLER_DDPM ? sc->num_train_timesteps : k == CDM_SAMPLER_DDIM ? 50 : 20;
}

/* One plaintext sampling loop from x (consumed). z: noise for steps that
 * need it (the same tensor each step: only the time matters here). */
static int plain_loop(cdm_nn *nn, cdm_unet *u, cdm_sampler *s, cdm_tensor *x,
		      const cdm_tensor *lab, const cdm_tensor *z, volatile sig_atomic_t *stop,
		      struct cdm_err *err)
{
	cdm_tensor *hist = NULL;
	int rc = 0;
	int64_t B = x->dim[0];
	for (int64_t k = 0; k < cdm_sampler_steps(s) && rc == 0; k++) {
		if (stop && *stop) {
			rc = cdm_fail(err, CDM_ENET, "interrupted");
			break;
		}
		double t[CDM_SAMPLE_MAX_BATCH];
		for (int64_t b = 0; b < B; b++)
			t[b] = (double)cdm_sampler_timesteps(s)[k];
		cdm_tensor *eps = NULL, *xp = NULL, *x0 = NULL;
		rc = cdm_unet_forward(u, x, t, lab, &eps, err);
		if (rc == 0)
			rc = cdm_sampler_step(s, nn, k, x, eps, z, hist, &xp, &x0, err);
		cdm_nn_free(nn, eps);
		cdm_nn_free(nn, x);
		cdm_nn_free(nn, hist);
		x = xp;
		hist = x0;
	}
	cdm_nn_free(nn, x);
	cdm_nn_free(nn, hist);
	return rc;
}

/* Time the float32 sampling (median of runs); also resolves the default
 * step count and checks the model and label. */
static int plain_time(struct ctx *c, struct cdm_err *err)
{
	const struct cdm_bench_model_opts *o = c->o;
	cdm_nn *nn = NULL;
	cdm_unet *u = NULL;
	cdm_sampler *s = NULL;
	cdm_tensor *lab = NULL, *z = NULL;
	float *noise = NULL;
	struct cdm_model_paths paths;
	struct cdm_sched_config sc;
	double times[MAX_RUNS];
	int rc, have_sc = 0;
	if ((rc = cdm_nn_plain_new(&nn, err)) < 0 ||
	    (rc = cdm_unet_load(&u, nn, o->model_dir, &paths, err)) < 0 ||
	    (rc = cdm_sched_config_load(&sc, o->sampler, paths.sched_config, err)) < 0)
		goto done;
	have_sc = 1;
	c->steps = o->steps ? o->steps : default_steps(o->sampler, &sc);
	if ((rc = cdm_sampler_new(&s, &sc, o->sampler, c->steps, 0, err)) < 0)
		goto done;
	const struct cdm_unet_config *cfg = cdm_unet_config(u);
	if (!cfg->sample_h || !cfg->sample_w) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: config.json has no sample_size", o->model_dir);
		goto done;
	}
	if (cfg->num_class_embeds && (o->label < 0 || o->label >= cfg->num_class_embeds)) {
		rc = cdm_fail(err, CDM_EINPUT, "--label %lld: the model has classes 0..%lld",
			      (long long)o->label, (long long)cfg->num_class_embeds - 1);
		goto done;
	}
	int64_t dim[4] = {o->batch, cfg->in_channels, cfg->sample_h, cfg->sample_w};
	size_t n = (size_t)(dim[0] * dim[1] * dim[2] * dim[3]);
	if (!(noise = cdm_alloc(n, sizeof *noise, err))) {
		rc = CDM_ENOMEM;
		goto done;
	}
	if ((rc = cdm_sample_seed_noise(o->seed, noise, n, err)) < 0 ||
	    (rc = cdm_nn_public(nn, 4, dim, noise, &z, err)) < 0)
		goto done;
	if (cfg->num_class_embeds) {
		int64_t labels[CDM_SAMPLE_MAX_BATCH];
		for (int64_t b = 0; b < o->batch; b++)
			labels[b] = o->label;
		if ((rc = cdm_nn_onehot(nn, labels, o->batch, cfg->num_class_embeds, &lab, err)) < 0)
			goto done;
	}
	if (o->no_plain) {
		c->res->plain_seconds = -1;
		goto done;
	}
	/* one OpenBLAS thread, as each party uses one core: on a loaded
	 * machine more threads only spin (restored below) */
	int threads = openblas_get_num_threads();
	openblas_set_num_threads(1);
	for (int r = 0; r < o->runs && rc == 0; r++) {
		say(c, "plaintext float32, run %d/%d", r + 1, o->runs);
		cdm_tensor *x = NULL;
		double t0 = cdm_now();
		if ((rc = cdm_nn_public(nn, 4, dim, noise, &x, err)) == 0)
			rc = plain_loop(nn, u, s, x, lab, z, o->stop, err);
		times[r] = cdm_now() - t0;
	}
	openblas_set_num_threads(threads);
	if (rc == 0)
		c->res->plain_seconds = median(times, o->runs);
done:
	if (nn) {
		cdm_nn_free(nn, lab);
		cdm_nn_free(nn, z);
	}
	cdm_free(noise);
	cdm_sampler_free(s);
	if (have_sc)
		cdm_sched_config_clear(&sc);
	cdm_unet_free(u);
	cdm_nn_plain_free(nn);
	return rc;
}

/* ---- work directory and shares ---------------------------------------------------- */

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[CDM_PATH_MAX + 256];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(dir);
}

static int make_dir(struct ctx *c, struct cdm_err *err)
{
	if (c->o->keep_dir) {
		if (snprintf(c->dir, sizeof c->dir, "%s", c->o->keep_dir) >= (int)sizeof c->dir)
			return cdm_fail(err, CDM_EINPUT, "--keep: path too long");
		if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
			return cdm_fail(err, CDM_EIO, "%s: cannot create: %s", c->dir, strerror(errno));
		return 0;
	}
	const char *t = getenv("TMPDIR");
	snprintf(c->dir, sizeof c->dir, "%s/cdm-bench.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(c->dir))
		return cdm_fail(err, CDM_EIO, "%s: cannot create a temporary directory: %s", c->dir,
				strerror(errno));
	c->tmp = 1;
	return 0;
}

static int make_shares(struct ctx *c, int conditional, struct cdm_err *err)
{
	const struct cdm_bench_model_opts *o = c->o;
	char mp[CDM_PATH_MAX], ip[CDM_PATH_MAX], xt[CDM_PATH_MAX];
	if (path_in(c, mp, sizeof mp, "m") < 0 || path_in(c, ip, sizeof ip, "in") < 0 ||
	    path_in(c, xt, sizeof xt, "xT.safetensors") < 0)
		return cdm_fail(err, CDM_EINPUT, "%s: path too long", c->dir);
	struct cdm_share_opts so = {.frac_bits = o->frac_bits};
	say(c, "sharing %s", o->model_dir);
	CDM_TRY(cdm_sample_share_model(o->model_dir, mp, &so, err));
	struct cdm_input_spec in = {.batch = o->batch, .labels = &o->label,
				    .nlabels = conditional ? 1 : 0, .has_seed = 1,
				    .seed = o->seed, .dump_noise = xt};
	return cdm_sample_share_input(o->model_dir, ip, &in, &so, err);
}

/* ---- party processes ----------------------------------------------------------------- */

/* Three free TCP ports on 127.0.0.1 (bound, read back, released). */
static int free_ports(int *port, struct cdm_err *err)
{
	int fd[3];
	for (int i = 0; i < 3; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t len = sizeof sa;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd[i] < 0 || bind(fd[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    getsockname(fd[i], (struct sockaddr *)&sa, &len) < 0) {
			int e = errno;
			for (int k = 0; k <= i; k++)
				if (fd[k] >= 0)
					close(fd[k]);
			return cdm_fail(err, CDM_ENET, "cannot find a free port: %s", strerror(e));
		}
		port[i] = ntohs(sa.sin_port);
	}
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	return 0;
}

static pid_t spawn(const char *const *argv, const char *err_path)
{
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	/* die with the benchmark, even if it is SIGKILLed */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int nul = open("/dev/null", O_RDWR);
	if (e < 0 || nul < 0)
		_exit(127);
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(e, 2);
	execv(argv[0], (char *const *)argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* The last ~1.5 KB of a party's stderr into res->failed_stderr. */
static void stderr_tail(struct ctx *c, int party, const char *path)
{
	struct cdm_bench_model_result *r = c->res;
	r->failed_party = party;
	r->failed_stderr[0] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > 1500 ? end - 1500 : 0;
	ssize_t n = pread(fd, r->failed_stderr, sizeof r->failed_stderr - 1, from);
	close(fd);
	r->failed_stderr[n > 0 ? n : 0] = 0;
}

static void kill_all(pid_t *pid)
{
	for (int i = 0; i < 3; i++)
		if (pid[i] > 0)
			kill(pid[i], SIGKILL);
	for (int i = 0; i < 3; i++)
		if (pid[i] > 0) {
			while (waitpid(pid[i], NULL, 0) < 0 && errno == EINTR)
				;
			pid[i] = 0;
		}
}

/* Wait for the three parties. Returns 0 if all exited 0; otherwise
 * CDM_ENET naming the first to fail (its stderr tail goes to res). */
static int wait_parties(struct ctx *c, pid_t *pid, char errp[3][CDM_PATH_MAX], const char *suite,
			struct cdm_err *err)
{
	int timeout = c->o->timeout_s ? c->o->timeout_s : 3600;
	double t0 = cdm_now(), fail_at = 0;
	int left = 3, first_bad = -1, bad_status = 0;
	while (left > 0) {
		int st, reaped = 0;
		/* our own pids only: the delay relays are children too */
		for (int i = 0; i < 3; i++) {
			if (pid[i] <= 0 || waitpid(pid[i], &st, WNOHANG) != pid[i])
				continue;
			pid[i] = 0;
			left--;
			reaped = 1;
			int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
			if (!ok && first_bad < 0) {
				first_bad = i;
				bad_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				fail_at = cdm_now();
			}
		}
		if (reaped)
			continue;
		double now = cdm_now();
		if (c->o->stop && *c->o->stop) {
			kill_all(pid);
			return cdm_fail(err, CDM_ENET, "interrupted");
		}
		if (now - t0 > timeout || (first_bad >= 0 && now - fail_at > GRACE_S)) {
			kill_all(pid);
			if (first_bad < 0)
				return cdm_fail(err, CDM_ENET, "%s: the parties did not finish within "
						"%d s (killed)", suite, timeout);
			break;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (first_bad < 0)
		return 0;
	stderr_tail(c, first_bad, errp[first_bad]);
	return cdm_fail(err, CDM_ENET, "%s: party %d failed (exit status %d)", suite, first_bad,
			bad_status);
}

/* Start the three parties of one run and wait for them. */
static int run_parties(struct ctx *c, enum cdm_suite s, double *wall, struct cdm_err *err)
{
	const struct cdm_bench_model_opts *o = c->o;
	const char *sn = cdm_suite_name(s);
	char exe[CDM_PATH_MAX], peers[3][256], mp[3][CDM_PATH_MAX], ip[3][CDM_PATH_MAX];
	char op[3][CDM_PATH_MAX], sp[3][CDM_PATH_MAX], ep[3][CDM_PATH_MAX];
	char ids[3][4], steps[24], threads[12];
	int port[3];
	if (snprintf(exe, sizeof exe, "%s/cdm-party", o->bin_dir) >= (int)sizeof exe ||
	    access(exe, X_OK) < 0)
		return cdm_fail(err, CDM_EINPUT, "%s: not found or not executable (build with make)",
				exe);
	if (c->ns) {
		for (int i = 0; i < 3; i++)
			CDM_TRY(cdm_netns_peers(c->ns, i, peers[i], sizeof peers[i], err));
		CDM_TRY(cdm_netns_start_relays(c->ns, err));
	} else {
		CDM_TRY(free_ports(port, err));
		for (int i = 0; i < 3; i++)
			snprintf(peers[i], sizeof peers[i], "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
				 port[0], port[1], port[2]);
	}
	snprintf(steps, sizeof steps, "%lld", (long long)c->steps);
	snprintf(threads, sizeof threads, "%d", o->threads > 1 ? o->threads : 1);
	pid_t pid[3] = {0, 0, 0};
	double t0 = cdm_now();
	for (int i = 0; i < 3; i++) {
		snprintf(ids[i], sizeof ids[i], "%d", i);
		if (path_in(c, mp[i], sizeof mp[i], "m.%d", i) < 0 ||
		    path_in(c, ip[i], sizeof ip[i], "in.%d", i) < 0 ||
		    path_in(c, op[i], sizeof op[i], "%s.out.%d", sn, i) < 0 ||
		    path_in(c, sp[i], sizeof sp[i], "%s.stats.%d.json", sn, i) < 0 ||
		    path_in(c, ep[i], sizeof ep[i], "%s.err.%d", sn, i) < 0) {
			kill_all(pid);
			return cdm_fail(err, CDM_EINPUT, "%s: path too long", c->dir);
		}
		unlink(sp[i]); /* a stale stats file must not pass for this run's */
		const char *argv[40];
		int n = c->ns ? cdm_netns_exec_prefix(c->ns, i, argv) : 0;
		const char *rest[] = {exe, "--id", ids[i], "--peers", peers[i], "--model", mp[i],
				      "--input", ip[i], "-o", op[i], "--stats", sp[i], "--sampler",
				      cdm_sampler_kind_name(o->sampler), "--steps", steps,
				      "--protocols", sn, "--timeout", "120", "--threads", threads,
				      "-q", NULL};
		for (int k = 0; rest[k]; k++)
			argv[n++] = rest[k];
		argv[n] = NULL;
		if ((pid[i] = spawn(argv, ep[i])) < 0) {
			kill_all(pid);
			return cdm_fail(err, CDM_EIO, "fork: %s", strerror(errno));
		}
	}
	int rc = wait_parties(c, pid, ep, sn, err);
	*wall = cdm_now() - t0;
	if (c->ns)
		cdm_netns_stop_relays(c->ns);
	return rc;
}

/* ---- stats files -------------------------------------------------------------------- */

static struct cdm_bench_layer *layer_get(struct costs *t, const char *name)
{
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->l[i].name, name) == 0)
			return &t->l[i];
	if (t->n == CDM_BENCH_MAX_LAYERS)
		return NULL;
	struct cdm_bench_layer *l = &t->l[t->n++];
	memset(l, 0, sizeof *l);
	snprintf(l->name, sizeof l->name, "%s", name);
	return l;
}

static int read_stats(const char *path, int party, struct run_out *ro, struct cdm_err *err)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return cdm_fail(err, CDM_EPROTO, "%s: party %d's stats: %s", path, party,
				root ? "not an object" : je.text);
	}
	json_t *sec = json_object_get(root, "seconds"), *by = json_object_get(root, "by_layer");
	json_t *b = json_object_get(root, "bytes_sent"), *r = json_object_get(root, "rounds");
	if (!json_is_number(sec) || !json_is_integer(b) || !json_is_integer(r) ||
	    !json_is_object(by)) {
		json_decref(root);
		return cdm_fail(err, CDM_EPROTO, "%s: lacks seconds, bytes_sent, rounds or by_layer",
				path);
	}
	double s = json_number_value(sec);
	if (s > ro->total.seconds)
		ro->total.seconds = s;
	ro->total.bytes += (uint64_t)json_integer_value(b);
	if ((uint64_t)json_integer_value(r) > ro->total.rounds)
		ro->total.rounds = (uint64_t)json_integer_value(r);
	ro->rss[party] = (uint64_t)json_integer_value(json_object_get(root, "peak_rss_bytes"));
	const char *key;
	json_t *v;
	json_object_foreach(by, key, v) {
		struct cdm_bench_layer *l = layer_get(&ro->layers, key);
		if (!l)
			continue;
		l->c.seconds += json_number_value(json_object_get(v, "seconds")) / 3;
		l->c.bytes += (uint64_t)json_integer_value(json_object_get(v, "bytes_sent"));
		uint64_t rr = (uint64_t)json_integer_value(json_object_get(v, "rounds"));
		if (rr > l->c.rounds)
			l->c.rounds = rr;
	}
	json_decref(root);
	return 0;
}

static int one_run(struct ctx *c, enum cdm_suite s, struct run_out *ro, struct cdm_err *err)
{
	memset(ro, 0, sizeof *ro);
	for (int k = 0; layer_order[k]; k++) /* fixed display order first */
		layer_get(&ro->layers, layer_order[k]);
	CDM_TRY(run_parties(c, s, &ro->wall, err));
	for (int i = 0; i < 3; i++) {
		char p[CDM_PATH_MAX];
		path_in(c, p, sizeof p, "%s.stats.%d.json", cdm_suite_name(s), i);
		CDM_TRY(read_stats(p, i, ro, err));
	}
	return 0;
}

/* ---- aggregation over runs ------------------------------------------------------------ */

static void aggregate(struct ctx *c, struct cdm_bench_suite_result *sr, struct run_out *ro, int n)
{
	double v[MAX_RUNS];
	const struct run_out *last = &ro[n - 1];
	sr->deterministic = 1;
	for (int r = 0; r < n; r++) {
		if (ro[r].total.bytes != last->total.bytes || ro[r].total.rounds != last->total.rounds)
			sr->deterministic = 0;
		for (int i = 0; i < 3; i++)
			if (ro[r].rss[i] > sr->peak_rss[i])
				sr->peak_rss[i] = ro[r].rss[i];
	}
	sr->total = last->total;
	for (int r = 0; r < n; r++)
		v[r] = ro[r].total.seconds;
	sr->total.seconds = median(v, n);
	for (int r = 0; r < n; r++)
		v[r] = ro[r].wall;
	sr->wall_seconds = median(v, n);
	struct cdm_bench_cost call = sr->total;
	sr->nlayers = 0;
	for (int k = 0; k < last->layers.n; k++) {
		const struct cdm_bench_layer *l = &last->layers.l[k];
		struct cdm_bench_layer *o = &sr->layers[sr->nlayers];
		for (int r = 0; r < n; r++) { /* the same index in every run: same key order */
			const struct cdm_bench_layer *lr = layer_get(&ro[r].layers, l->name);
			v[r] = lr ? lr->c.seconds : 0;
		}
		*o = *l;
		o->c.seconds = median(v, n);
		if (!o->c.bytes && !o->c.rounds && o->c.seconds < 1e-9)
			continue; /* a layer type this model does not have */
		sr->nlayers++;
		if (!strcmp(l->name, "setup") || !strcmp(l->name, "sampler")) {
			call.bytes -= o->c.bytes;
			call.rounds -= o->c.rounds;
			call.seconds -= o->c.seconds;
		}
	}
	if (call.seconds < 0)
		call.seconds = 0;
	sr->per_call.seconds = call.seconds / (double)c->steps;
	sr->per_call.bytes = call.bytes / (uint64_t)c->steps;
	sr->per_call.rounds = call.rounds / (uint64_t)c->steps;
}

/* ---- the benchmark ----------------------------------------------------------------------- */

static int check_opts(const struct cdm_bench_model_opts *o, struct cdm_err *err)
{
	if (!o->model_dir || !o->bin_dir)
		return cdm_fail(err, CDM_EINPUT, "model: no model folder given");
	if (o->nsuites < 1 || o->nsuites > CDM_BENCH_MAX_SUITES)
		return cdm_fail(err, CDM_EINPUT, "--protocols: 1 to %d suites", CDM_BENCH_MAX_SUITES);
	for (int i = 0; i < o->nsuites; i++)
		for (int k = 0; k < i; k++)
			if (o->suites[i] == o->suites[k])
				return cdm_fail(err, CDM_EINPUT, "--protocols: '%s' given twice",
						cdm_suite_name(o->suites[i]));
	if (o->runs < 1 || o->runs > MAX_RUNS)
		return cdm_fail(err, CDM_EINPUT, "--runs: 1..%d", MAX_RUNS);
	if (o->batch < 1 || o->batch > CDM_SAMPLE_MAX_BATCH)
		return cdm_fail(err, CDM_EINPUT, "--batch: 1..%d", CDM_SAMPLE_MAX_BATCH);
	if (o->steps < 0)
		return cdm_fail(err, CDM_EINPUT, "--steps: must be positive");
	return 0;
}

static void init_result(const struct cdm_bench_model_opts *o, struct cdm_bench_model_result *r)
{
	memset(r, 0, sizeof *r);
	snprintf(r->model, sizeof r->model, "%s", o->model_dir ? o->model_dir : "");
	snprintf(r->sampler, sizeof r->sampler, "%s", cdm_sampler_kind_name(o->sampler));
	r->batch = o->batch;
	r->label = o->label;
	r->seed = o->seed;
	r->runs = o->runs;
	r->net = o->net;
	r->failed_party = -1;
	r->plain_seconds = -1;
	r->nsuites = o->nsuites;
	if (o->net == CDM_BENCH_LAN) {
		r->rate_mbit = 1000;
		r->rtt_ms = 0.2;
	} else if (o->net == CDM_BENCH_WAN) {
		r->rate_mbit = 100;
		r->rtt_ms = 20;
	}
}

static int bench(struct ctx *c, struct cdm_err *err)
{
	const struct cdm_bench_model_opts *o = c->o;
	struct cdm_bench_model_result *res = c->res;
	struct cdm_unet_config cfg;
	struct cdm_model_paths paths;
	CDM_TRY(plain_time(c, err));
	res->steps = c->steps;
	CDM_TRY(cdm_model_locate(&paths, o->model_dir, err));
	CDM_TRY(cdm_unet_config_load(&cfg, paths.config, err));
	CDM_TRY(make_dir(c, err));
	CDM_TRY(make_shares(c, cfg.num_class_embeds > 0, err));
	if (o->net != CDM_BENCH_LOOPBACK) {
		say(c, "setting up network namespaces (%s: %g Mbit/s, RTT %g ms)",
		    cdm_bench_net_name(o->net), res->rate_mbit, res->rtt_ms);
		cdm_netns_sweep();
		CDM_TRY(cdm_netns_new(&c->ns, res->rate_mbit, res->rtt_ms, err));
		snprintf(res->delay_mode, sizeof res->delay_mode, "%s", cdm_netns_delay_mode(c->ns));
	}
	struct run_out *ro = calloc((size_t)o->runs * (size_t)o->nsuites, sizeof *ro);
	if (!ro)
		return cdm_fail(err, CDM_ENOMEM, "model: out of memory");
	int rc = 0;
	/* runs outermost: the suites interleave, so drift in the machine's load
	 * affects every suite alike and the ratios stay fair */
	for (int r = 0; r < o->runs && rc == 0; r++)
		for (int k = 0; k < o->nsuites && rc == 0; k++) {
			say(c, "%s: run %d/%d (%s, %lld steps, %s)", cdm_suite_name(o->suites[k]), r + 1,
			    o->runs, res->sampler, (long long)c->steps, cdm_bench_net_name(o->net));
			rc = one_run(c, o->suites[k], &ro[k * o->runs + r], err);
		}
	for (int k = 0; k < o->nsuites && rc == 0; k++) {
		res->suites[k].suite = o->suites[k];
		aggregate(c, &res->suites[k], &ro[k * o->runs], o->runs);
	}
	free(ro);
	return rc;
}

int cdm_bench_model(const struct cdm_bench_model_opts *o, struct cdm_bench_model_result *res,
		    struct cdm_err *err)
{
	init_result(o, res);
	CDM_TRY(check_opts(o, err));
	struct ctx c = {.o = o, .res = res};
	int rc = bench(&c, err);
	cdm_netns_free(c.ns);
	if (c.tmp)
		remove_tree(c.dir);
	return rc;
}

/* ---- rendering ------------------------------------------------------------------------ */

static const struct cdm_bench_suite_result *find_spu(const struct cdm_bench_model_result *r)
{
	for (int k = 0; k < r->nsuites; k++)
		if (r->suites[k].suite == CDM_SUITE_SPU)
			return &r->suites[k];
	return NULL;
}

/* spu's figure over this suite's: > 1 means this suite is cheaper. */
static double ratio(double spu, double mine) { return mine > 0 ? spu / mine : 0; }

static void table_suite(FILE *f, const struct cdm_bench_model_result *r,
			const struct cdm_bench_suite_result *s)
{
	fprintf(f, "\nsuite %s: %.3f s (wall %.3f s), %.2f MB sent (all parties), %llu rounds%s\n",
		cdm_suite_name(s->suite), s->total.seconds, s->wall_seconds, s->total.bytes / 1e6,
		(unsigned long long)s->total.rounds, s->deterministic ? "" : " (NOT deterministic)");
	fprintf(f, "  peak RSS per party: %.1f / %.1f / %.1f MB", s->peak_rss[0] / 1048576.0,
		s->peak_rss[1] / 1048576.0, s->peak_rss[2] / 1048576.0);
	if (r->plain_seconds > 0)
		fprintf(f, "; %.1fx the plaintext time", s->total.seconds / r->plain_seconds);
	fprintf(f, "\n  %-18s %10s %7s %12s %8s\n", "layer", "seconds", "time%", "MB", "rounds");
	for (int i = 0; i < s->nlayers; i++) {
		const struct cdm_bench_layer *l = &s->layers[i];
		fprintf(f, "  %-18s %10.4f %6.1f%% %12.3f %8llu\n", l->name, l->c.seconds,
			s->total.seconds > 0 ? 100 * l->c.seconds / s->total.seconds : 0,
			l->c.bytes / 1e6, (unsigned long long)l->c.rounds);
	}
	fprintf(f, "  %-18s %10.4f %7s %12.3f %8llu\n", "total", s->total.seconds, "",
		s->total.bytes / 1e6, (unsigned long long)s->total.rounds);
	fprintf(f, "  %-18s %10.4f %7s %12.3f %8llu\n", "per UNet call", s->per_call.seconds, "",
		s->per_call.bytes / 1e6, (unsigned long long)s->per_call.rounds);
}

char *cdm_bench_model_table(const struct cdm_bench_model_result *r, struct cdm_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		cdm_fail(err, CDM_ENOMEM, "model: out of memory");
		return NULL;
	}
	fprintf(f, "model %s: %s, %lld steps, batch %lld, label %lld, seed %llu; %s", r->model,
		r->sampler, (long long)r->steps, (long long)r->batch, (long long)r->label,
		(unsigned long long)r->seed, cdm_bench_net_name(r->net));
	if (r->net != CDM_BENCH_LOOPBACK)
		fprintf(f, " (%g Mbit/s, RTT %g ms, delay by %s)", r->rate_mbit, r->rtt_ms,
			r->delay_mode);
	fprintf(f, "; median of %d run%s\n", r->runs, r->runs > 1 ? "s" : "");
	if (r->plain_seconds >= 0)
		fprintf(f, "plaintext float32 (in-process lib/model + lib/sched, 1 thread): %.4f s\n",
			r->plain_seconds);
	for (int k = 0; k < r->nsuites; k++)
		table_suite(f, r, &r->suites[k]);
	const struct cdm_bench_suite_result *spu = find_spu(r);
	if (spu && r->nsuites > 1) {
		fprintf(f, "\nagainst spu (spu / suite; > 1: cheaper than spu)\n");
		fprintf(f, "  %-9s %8s %8s %8s   per UNet call: %8s %8s %8s\n", "suite", "bytes",
			"rounds", "time", "bytes", "rounds", "time");
		for (int k = 0; k < r->nsuites; k++) {
			const struct cdm_bench_suite_result *s = &r->suites[k];
			fprintf(f, "  %-9s %7.2fx %7.2fx %7.2fx                  %7.2fx %7.2fx %7.2fx\n",
				cdm_suite_name(s->suite), ratio((double)spu->total.bytes, (double)s->total.bytes),
				ratio((double)spu->total.rounds, (double)s->total.rounds),
				ratio(spu->total.seconds, s->total.seconds),
				ratio((double)spu->per_call.bytes, (double)s->per_call.bytes),
				ratio((double)spu->per_call.rounds, (double)s->per_call.rounds),
				ratio(spu->per_call.seconds, s->per_call.seconds));
		}
	}
	if (fclose(f) != 0 || !buf) {
		free(buf);
		cdm_fail(err, CDM_ENOMEM, "model: out of memory");
		return NULL;
	}
	return buf;
}

static json_t *cost_json(const struct cdm_bench_cost *c)
{
	return json_pack("{s:f, s:I, s:I}", "seconds", c->seconds, "bytes_sent",
			 (json_int_t)c->bytes, "rounds", (json_int_t)c->rounds);
}

static json_t *suite_json(const struct cdm_bench_model_result *r,
			  const struct cdm_bench_suite_result *s)
{
	json_t *o = json_object(), *by = json_object(), *rss = json_array();
	uint64_t peak = 0;
	json_object_set_new(o, "suite", json_string(cdm_suite_name(s->suite)));
	json_object_set_new(o, "sampler", json_string(r->sampler));
	json_object_set_new(o, "steps", json_integer(r->steps));
	json_object_set_new(o, "seconds", json_real(s->total.seconds));
	json_object_set_new(o, "wall_seconds", json_real(s->wall_seconds));
	json_object_set_new(o, "bytes_sent", json_integer((json_int_t)s->total.bytes));
	json_object_set_new(o, "rounds", json_integer((json_int_t)s->total.rounds));
	json_object_set_new(o, "deterministic", json_boolean(s->deterministic));
	for (int i = 0; i < 3; i++) {
		json_array_append_new(rss, json_integer((json_int_t)s->peak_rss[i]));
		peak = s->peak_rss[i] > peak ? s->peak_rss[i] : peak;
	}
	json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)peak));
	json_object_set_new(o, "peak_rss_bytes_by_party", rss);
	json_object_set_new(o, "secure_over_plaintext",
			    r->plain_seconds > 0 ? json_real(s->total.seconds / r->plain_seconds)
						 : json_null());
	json_object_set_new(o, "per_unet_call", cost_json(&s->per_call));
	const struct cdm_bench_suite_result *spu = find_spu(r);
	if (spu)
		json_object_set_new(
			o, "spu_over_suite",
			json_pack("{s:f, s:f, s:f, s:{s:f, s:f, s:f}}", "bytes",
				  ratio((double)spu->total.bytes, (double)s->total.bytes), "rounds",
				  ratio((double)spu->total.rounds, (double)s->total.rounds), "seconds",
				  ratio(spu->total.seconds, s->total.seconds), "per_unet_call", "bytes",
				  ratio((double)spu->per_call.bytes, (double)s->per_call.bytes), "rounds",
				  ratio((double)spu->per_call.rounds, (double)s->per_call.rounds),
				  "seconds", ratio(spu->per_call.seconds, s->per_call.seconds)));
	for (int i = 0; i < s->nlayers; i++)
		json_object_set_new(by, s->layers[i].name, cost_json(&s->layers[i].c));
	json_object_set_new(o, "by_layer", by);
	return o;
}

char *cdm_bench_model_json(const struct cdm_bench_model_result *r, struct cdm_err *err)
{
	json_t *root = json_object(), *suites = json_array();
	json_object_set_new(root, "model", json_string(r->model));
	json_object_set_new(root, "sampler", json_string(r->sampler));
	json_object_set_new(root, "steps", json_integer(r->steps));
	json_object_set_new(root, "batch", json_integer(r->batch));
	json_object_set_new(root, "label", json_integer(r->label));
	json_object_set_new(root, "seed", json_integer((json_int_t)r->seed));
	json_object_set_new(root, "runs", json_integer(r->runs));
	json_object_set_new(root, "net", json_string(cdm_bench_net_name(r->net)));
	if (r->net != CDM_BENCH_LOOPBACK)
		json_object_set_new(root, "link", json_pack("{s:f, s:f, s:s}", "rate_mbit",
							    r->rate_mbit, "rtt_ms", r->rtt_ms,
							    "delay", r->delay_mode));
	json_object_set_new(root, "plaintext_seconds",
			    r->plain_seconds >= 0 ? json_real(r->plain_seconds) : json_null());
	json_object_set_new(root, "plaintext_method",
			    json_string("in-process lib/model + lib/sched, float32 plain backend, "
					"sampling loop only"));
	for (int k = 0; k < r->nsuites; k++)
		json_array_append_new(suites, suite_json(r, &r->suites[k]));
	json_object_set_new(root, "suites", suites);
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(root);
	if (!s)
		cdm_fail(err, CDM_ENOMEM, "model: out of memory");
	return s;
}
