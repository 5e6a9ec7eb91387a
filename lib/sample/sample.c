/*
 * sample/sample: the party side -- agreement check, joint noise, the
 * sampling loop on shares, the output share (see sample.h).
 */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/config.h"
#include "../model/unet.h"
#include "../nn/secure.h"
#include "../prg/prg.h"
#include "../ring/ring.h"
#include "ckpt.h"
#include "sample_impl.h"

#include <openssl/evp.h>

#define DIGEST_LEN 512
#define RUN_LEN (DIGEST_LEN - 64) /* the run's part of the digest */
_Static_assert(RUN_LEN == CDM_SAMPLE_RUN_LEN, "sample.h's run length");
#define CKPT_EVERY_DEFAULT 5

int cdm_sample_check_share(const cdm_share *sh, int id, const char *kind, struct cdm_err *err)
{
	const char *k = cdm_share_kind_name(sh->kind);
	if (strcmp(k, kind) != 0)
		return cdm_fail(err, CDM_EINPUT, "%s: is a%s %s share, expected a%s %s share",
				sh->path, k[0] == 'i' || k[0] == 'o' ? "n" : "", k,
				kind[0] == 'i' || kind[0] == 'o' ? "n" : "", kind);
	if (sh->party != id)
		return cdm_fail(err, CDM_EINPUT, "%s: is party %d's share, expected party %d's",
				sh->path, sh->party, id);
	return 0;
}

/* ---- agreement ------------------------------------------------------------------ */

/* "key=value" fields a checkpoint must match: the run's identity. */
static void run_digest(char *d, const char *model_id, const cdm_share *input,
		       const struct cdm_sample_opts *o, int frac)
{
	memset(d, 0, RUN_LEN);
	snprintf(d, RUN_LEN,
		 "model_sharing=%s input_sharing=%s sampler=%s steps=%lld eta=%.17g "
		 "protocols=%s frac_bits=%d",
		 model_id, input->sharing_id, cdm_sampler_kind_name(o->sampler),
		 (long long)o->steps, o->eta, cdm_suite_name(o->suite), frac);
}

/* The first field where two digests differ, as an error naming both values. */
static int mismatch(const char *mine, const char *theirs, int peer, struct cdm_err *err)
{
	const char *p = mine, *q = theirs;
	while (*p) {
		size_t lp = strcspn(p, " "), lq = strcspn(q, " ");
		if (lp != lq || memcmp(p, q, lp) != 0) {
			size_t key = strcspn(p, "=");
			const char *qv = memchr(q, '=', lq);
			return cdm_fail(err, CDM_EINPUT,
					"party %d disagrees on %.*s: %.*s here, %.*s there", peer,
					(int)key, p, (int)(lp - key - 1), p + key + 1,
					qv ? (int)(lq - (size_t)(qv - q) - 1) : (int)lq,
					qv ? qv + 1 : q);
		}
		p += lp + (p[lp] == ' ');
		q += lq + (q[lq] == ' ');
	}
	return cdm_fail(err, CDM_EINPUT, "party %d disagrees on the run parameters", peer);
}

/* One round: len bytes of `mine` to both peers, theirs into in[peer]. */
static int exchange(cdm_mpc *m, const void *mine, void *in0, void *in1, void *in2, size_t len,
		    struct cdm_err *err)
{
	void *in[CDM_PARTIES] = {in0, in1, in2};
	int id = cdm_mpc_id(m);
	struct cdm_xfer x = {0};
	for (int p = 0; p < CDM_PARTIES; p++) {
		if (p == id)
			continue;
		x.send[p] = mine;
		x.send_len[p] = len;
		x.recv[p] = in[p];
		x.recv_len[p] = len;
	}
	return cdm_net_round(cdm_mpc_net(m), &x, err);
}

/* One round: the digest to both peers and from both. */
static int agree(cdm_mpc *m, const char *d, struct cdm_err *err)
{
	int id = cdm_mpc_id(m);
	char in[CDM_PARTIES][DIGEST_LEN];
	CDM_TRY(exchange(m, d, in[0], in[1], in[2], DIGEST_LEN, err));
	for (int k = 1; k <= 2; k++) {
		int peer = (id + k) % 3;
		in[peer][DIGEST_LEN - 1] = 0;
		if (memcmp(d, in[peer], DIGEST_LEN) != 0)
			return mismatch(d, in[peer], peer, err);
	}
	return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

static int parse_shape(const cdm_share *in, int64_t shape[4], struct cdm_err *err)
{
	const char *s = cdm_share_meta(in, "shape");
	long long v[4];
	char tail;
	if (!s || sscanf(s, "%lld,%lld,%lld,%lld%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4)
		return cdm_fail(err, CDM_EINPUT, "%s: missing or bad 'shape' metadata", in->path);
	for (int i = 0; i < 4; i++) {
		if (v[i] < 1 || v[i] > 65536)
			return cdm_fail(err, CDM_EINPUT, "%s: bad 'shape' metadata '%s'", in->path, s);
		shape[i] = v[i];
	}
	if (shape[0] > CDM_SAMPLE_MAX_BATCH)
		return cdm_fail(err, CDM_EINPUT, "%s: batch %lld above %d", in->path,
				(long long)shape[0], CDM_SAMPLE_MAX_BATCH);
	return 0;
}

static int load_configs(const cdm_share *model, enum cdm_sampler_kind kind,
			struct cdm_unet_config *ucfg, struct cdm_sched_config *scfg,
			struct cdm_err *err)
{
	char what[CDM_PATH_MAX + 32];
	const char *c = cdm_share_meta(model, "config"), *s = cdm_share_meta(model, "scheduler_config");
	if (!c)
		return cdm_fail(err, CDM_EINPUT, "%s: no config metadata", model->path);
	snprintf(what, sizeof what, "%s: config", model->path);
	CDM_TRY(cdm_unet_config_parse(ucfg, c, strlen(c), what, err));
	if (!s) {
		cdm_sched_config_default(scfg, kind);
		return 0;
	}
	snprintf(what, sizeof what, "%s: scheduler_config", model->path);
	return cdm_sched_config_parse(scfg, kind, s, strlen(s), what, err);
}

int cdm_sample_hash_file(EVP_MD_CTX *ctx, const char *path, struct cdm_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return cdm_fail(err, CDM_EINPUT, "%s: cannot open", path);
	unsigned char buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	int bad = ferror(f);
	fclose(f);
	return bad ? cdm_fail(err, CDM_EINPUT, "%s: read error", path) : 0;
}

/* "public:" and the first 128 bits of SHA-256(config, weights, scheduler
 * config): what the three parties compare in public-model mode. */
static int public_model_id(const struct cdm_model_paths *p, char *out, size_t size,
			   struct cdm_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return cdm_fail(err, CDM_EINTERNAL, "public model: SHA-256 unavailable");
	}
	int rc = cdm_sample_hash_file(ctx, p->config, err);
	if (rc == 0)
		rc = cdm_sample_hash_file(ctx, p->weights, err);
	if (rc == 0 && p->sched_config[0])
		rc = cdm_sample_hash_file(ctx, p->sched_config, err);
	if (rc == 0)
		EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	CDM_TRY(rc);
	int k = snprintf(out, size, "public:");
	for (unsigned i = 0; i < 16 && i < len; i++)
		k += snprintf(out + k, size - (size_t)k, "%02x", md[i]);
	return 0;
}

/* Secret input tensor `name` of the input share as a new backend tensor. */
static int input_tensor(cdm_nn *nn, cdm_share *in, const char *name, int ndim,
			const int64_t *shape, int integer, cdm_tensor **out, struct cdm_err *err)
{
	const uint64_t *a, *b;
	cdm_shr s = {0};
	CDM_TRY(cdm_share_get(in, name, ndim, shape, &a, &b, err));
	size_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= (size_t)shape[i];
	CDM_TRY(cdm_shr_new(&s, n, err));
	memcpy(s.a, a, n * 8);
	memcpy(s.b, b, n * 8);
	int rc = cdm_nn_secure_wrap(nn, ndim, shape, &s, integer, out, err);
	cdm_shr_free(&s);
	return rc;
}

struct run {
	cdm_mpc *m;        /* the caller's session: setup rounds only */
	cdm_mpc *sm;       /* the current step's session (owned), or NULL */
	cdm_nn *nn;
	cdm_unet *unet;
	cdm_sampler *sampler;
	cdm_noise *noise;
	cdm_st *pubw;      /* public-model weights, or NULL */
	cdm_tensor *x, *labels, *x0_prev;
	int64_t shape[4];
	int64_t start;     /* completed steps at start (resume) */
	int64_t last_ckpt; /* step of the newest checkpoint kept, or -1 */
	uint8_t seed[CDM_SEED_BYTES];          /* this party's seed */
	char run[RUN_LEN];                     /* run_digest() */
	char step_id[CDM_SHARE_ID_LEN + 1];    /* id drawn at the end of the last step */
	struct cdm_sample_result *res;         /* costs accumulate here */
	const struct cdm_sample_opts *o;
};

static void run_free(struct run *r)
{
	if (r->nn) {
		cdm_nn_free(r->nn, r->x);
		cdm_nn_free(r->nn, r->labels);
		cdm_nn_free(r->nn, r->x0_prev);
	}
	cdm_unet_free(r->unet);
	cdm_sampler_free(r->sampler);
	cdm_nn_secure_free(r->nn);
	cdm_noise_free(r->noise);
	cdm_mpc_free(r->sm);
	cdm_st_close(r->pubw);
	memset(r->seed, 0, sizeof r->seed);
}

/* Add a session's per-label costs to the result (`skip`: a label that
 * only spans time spent in other sessions). */
static void add_costs(struct cdm_sample_result *res, const cdm_mpc *m, const char *skip)
{
	struct cdm_cost c[CDM_MPC_MAX_LABELS];
	size_t n = cdm_mpc_costs(m, c, CDM_MPC_MAX_LABELS);
	for (size_t i = 0; i < n; i++) {
		if (skip && !strcmp(c[i].label, skip))
			continue;
		size_t j = 0;
		while (j < res->ncost && strcmp(res->cost[j].label, c[i].label) != 0)
			j++;
		if (j == res->ncost) {
			if (res->ncost == CDM_MPC_MAX_LABELS)
				continue;
			memset(&res->cost[j], 0, sizeof res->cost[j]);
			memcpy(res->cost[j].label, c[i].label, sizeof c[i].label);
			res->ncost++;
		}
		res->cost[j].seconds += c[i].seconds;
		res->cost[j].bytes_sent += c[i].bytes_sent;
		res->cost[j].rounds += c[i].rounds;
	}
}

int cdm_sample_joint_tensor(cdm_nn *nn, cdm_noise *noise, const int64_t shape[4],
			    uint64_t index, cdm_tensor **out, struct cdm_err *err)
{
	cdm_shr s = {0};
	size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
	int rc = cdm_noise_seek(noise, index, err);
	if (rc == 0)
		rc = cdm_noise_draw(noise, &s, n, err);
	if (rc == 0)
		rc = cdm_nn_secure_wrap(nn, 4, shape, &s, 0, out, err);
	cdm_shr_free(&s);
	return rc;
}

int cdm_sample_advance(cdm_nn *nn, cdm_mpc *m, cdm_noise *noise, const cdm_sampler *sampler,
		       int64_t k, const int64_t shape[4], const cdm_tensor *eps, cdm_tensor **x,
		       cdm_tensor **x0_prev, struct cdm_err *err)
{
	struct cdm_step_coefs c;
	cdm_tensor *z = NULL, *next = NULL, *x0 = NULL;
	CDM_TRY(cdm_sampler_coefs(sampler, k, &c, err));
	int rc = 0;
	if (c.needs_noise) { /* DDPM, DDIM eta > 0: joint noise, sub-stream k + 1 */
		cdm_mpc_set_label(m, "noise");
		rc = cdm_sample_joint_tensor(nn, noise, shape, (uint64_t)k + 1, &z, err);
	}
	if (rc == 0) {
		cdm_nn_secure_set_phase(nn, "sampler");
		rc = cdm_sampler_step(sampler, nn, k, *x, eps, z, *x0_prev, &next, &x0, err);
		cdm_nn_secure_set_phase(nn, NULL);
	}
	if (rc == 0) {
		cdm_nn_free(nn, *x);
		cdm_nn_free(nn, *x0_prev);
		*x = next;
		*x0_prev = x0;
	}
	cdm_nn_free(nn, z);
	return rc;
}

int cdm_sample_party_seed(const struct cdm_sample_opts *o, int id,
			  uint8_t seed[CDM_SEED_BYTES], struct cdm_err *err)
{
	if (o->party_seed) {
		memcpy(seed, o->party_seed, CDM_SEED_BYTES);
		return 0;
	}
	if (o->noise_seed) {
		cdm_prg_derive(o->noise_seed, "party-seed", (uint64_t)id, seed);
		return 0;
	}
	return cdm_seed_random(seed, err);
}

/* ---- resume ------------------------------------------------------------------------ */

struct ckpt_list {               /* one party's newest checkpoints, on the wire */
	int64_t n;
	int64_t step[CKPT_KEEP];
	char id[CKPT_KEEP][CDM_SHARE_ID_LEN + 1];
	char pad[6];
};

static int has_step(const struct ckpt_list *l, int64_t step, const char *id)
{
	for (int64_t i = 0; i < l->n && i < CKPT_KEEP; i++)
		if (l->step[i] == step && !strncmp(l->id[i], id, CDM_SHARE_ID_LEN))
			return 1;
	return 0;
}

static void list_str(char *buf, size_t size, const struct ckpt_list *l)
{
	int k = snprintf(buf, size, "%s", l->n ? "" : "none");
	for (int64_t i = 0; i < l->n && i < CKPT_KEEP; i++)
		k += snprintf(buf + k, size - (size_t)k, "%s%lld", i ? "," : "", (long long)l->step[i]);
}

/* One round: the lists of the three parties; the newest step all three hold
 * with the same sharing id, 0 when nobody has any checkpoint. Every party
 * computes the same answer from the same three lists. */
static int resume_step(struct run *r, int64_t *step, struct cdm_err *err)
{
	int id = cdm_mpc_id(r->m);
	struct ckpt_list l[CDM_PARTIES];
	memset(l, 0, sizeof l);
	int n = 0;
	CDM_TRY(ckpt_scan(r->o->checkpoint_dir, id, r->run, l[id].step, l[id].id, &n, err));
	l[id].n = n;
	cdm_mpc_set_label(r->m, "setup");
	CDM_TRY(exchange(r->m, &l[id], &l[0], &l[1], &l[2], sizeof l[id], err));
	*step = 0;
	int any = 0;
	for (int p = 0; p < CDM_PARTIES; p++) {
		any |= l[p].n != 0;
		for (int64_t i = 0; i < l[p].n && i < CKPT_KEEP; i++) {
			l[p].id[i][CDM_SHARE_ID_LEN] = 0;
			int64_t s = l[p].step[i];
			if (s > *step && has_step(&l[0], s, l[p].id[i]) &&
			    has_step(&l[1], s, l[p].id[i]) && has_step(&l[2], s, l[p].id[i]))
				*step = s;
		}
	}
	if (*step == 0 && any) {
		char a[64], b[64], c[64];
		list_str(a, sizeof a, &l[0]);
		list_str(b, sizeof b, &l[1]);
		list_str(c, sizeof c, &l[2]);
		return cdm_fail(err, CDM_EINPUT, "--resume: no checkpoint step common to the three "
				"parties in %s (party 0: %s; party 1: %s; party 2: %s)",
				r->o->checkpoint_dir, a, b, c);
	}
	return 0;
}

/* Load checkpoint `step`: this party's seed, x and the DPM++ history. */
static int load_state(struct run *r, int64_t step, struct cdm_err *err)
{
	struct ckpt_state st;
	CDM_TRY(ckpt_load(r->o->checkpoint_dir, cdm_mpc_id(r->m), cdm_mpc_frac(r->m), r->run, step,
			  r->shape, &st, err));
	memcpy(r->seed, st.seed, CDM_SEED_BYTES);
	r->start = step;
	r->last_ckpt = step;
	int rc = cdm_nn_secure_wrap(r->nn, 4, r->shape, &st.x, 0, &r->x, err);
	if (rc == 0 && st.x0_prev.a)
		rc = cdm_nn_secure_wrap(r->nn, 4, r->shape, &st.x0_prev, 0, &r->x0_prev, err);
	ckpt_state_clear(&st);
	return rc;
}

/* ---- setup ---------------------------------------------------------------------------- */

/* Model configs and the weight source: a model share, or (public-model
 * mode) a plaintext folder whose hash stands in for the sharing id. */
static int open_model(struct run *r, cdm_share *model, struct cdm_unet_config *ucfg,
		      struct cdm_sched_config *scfg, struct cdm_err *err)
{
	const struct cdm_sample_opts *o = r->o;
	if (!o->public_model) {
		if (!model)
			return cdm_fail(err, CDM_EINPUT, "no model share");
		CDM_TRY(cdm_sample_check_share(model, cdm_mpc_id(r->m), "model", err));
		if (model->frac_bits != cdm_mpc_frac(r->m))
			return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits; the session uses %d",
					model->path, model->frac_bits, cdm_mpc_frac(r->m));
		snprintf(r->res->model_id, sizeof r->res->model_id, "%s", model->sharing_id);
		return load_configs(model, o->sampler, ucfg, scfg, err);
	}
	struct cdm_model_paths p;
	CDM_TRY(cdm_model_locate(&p, o->public_model, err));
	CDM_TRY(public_model_id(&p, r->res->model_id, sizeof r->res->model_id, err));
	CDM_TRY(cdm_unet_config_load(ucfg, p.config, err));
	CDM_TRY(cdm_sched_config_load(scfg, o->sampler, p.sched_config, err));
	int rc = cdm_st_open(&r->pubw, p.weights, err);
	if (rc < 0)
		cdm_sched_config_clear(scfg);
	return rc;
}

static int setup(struct run *r, cdm_share *model, cdm_share *input, struct cdm_err *err)
{
	const struct cdm_sample_opts *o = r->o;
	struct cdm_unet_config ucfg;
	struct cdm_sched_config scfg;
	int id = cdm_mpc_id(r->m);
	char d[DIGEST_LEN] = {0};
	if (!o->public_model && model)
		CDM_TRY(cdm_sample_check_share(model, id, "model", err));
	CDM_TRY(cdm_sample_check_share(input, id, "input", err));
	if (!o->public_model && model &&
	    (model->frac_bits != cdm_mpc_frac(r->m) || input->frac_bits != cdm_mpc_frac(r->m)))
		return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits and %s %d; the session "
				"uses %d", model->path, model->frac_bits, input->path,
				input->frac_bits, cdm_mpc_frac(r->m));
	if (input->frac_bits != cdm_mpc_frac(r->m))
		return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits; the session uses %d",
				input->path, input->frac_bits, cdm_mpc_frac(r->m));
	CDM_TRY(parse_shape(input, r->shape, err));
	if ((o->resume || o->checkpoint_every) && !o->checkpoint_dir)
		return cdm_fail(err, CDM_EINPUT, "--resume and --checkpoint-every need --checkpoint");
	CDM_TRY(open_model(r, model, &ucfg, &scfg, err));
	run_digest(r->run, r->res->model_id, input, o, cdm_mpc_frac(r->m));
	memcpy(r->res->run, r->run, sizeof r->res->run);
	snprintf(d, sizeof d, "%s checkpoint_every=%lld resume=%d", r->run,
		 o->checkpoint_dir ? (long long)(o->checkpoint_every ? o->checkpoint_every
								       : CKPT_EVERY_DEFAULT)
				   : 0LL,
		 o->resume);
	cdm_mpc_set_label(r->m, "setup");
	int rc = agree(r->m, d, err);
	if (rc == 0 && scfg.thresholding)
		rc = cdm_fail(err, CDM_EINPUT, "%s: scheduler_config has thresholding=true; "
			      "dynamic thresholding (a quantile) is not supported on shares",
			      o->public_model ? o->public_model : model->path);
	if (rc == 0)
		rc = cdm_sampler_new(&r->sampler, &scfg, o->sampler, o->steps, o->eta, err);
	cdm_sched_config_clear(&scfg);
	CDM_TRY(rc);
	CDM_TRY(cdm_nn_secure_new(&r->nn, r->m, o->suite, err));
	if (r->pubw)
		CDM_TRY(cdm_nn_secure_bind_public(r->nn, r->pubw, err));
	else
		CDM_TRY(cdm_nn_secure_bind(r->nn, model, err));
	rc = cdm_unet_new(&r->unet, r->nn, &ucfg, err);
	if (rc < 0) {
		/* a weight error names the share file already: do not name it twice */
		const char *src = o->public_model ? o->public_model : model->path;
		if (strncmp(err->msg, src, strlen(src)) != 0)
			cdm_err_prefix(err, "%s: ", src);
		return rc;
	}
	CDM_TRY(cdm_unet_check_input(r->unet, 4, r->shape, err));
	if (ucfg.num_class_embeds) {
		int64_t ld[2] = {r->shape[0], ucfg.num_class_embeds};
		if (!cdm_share_find(input, "label"))
			return cdm_fail(err, CDM_EINPUT, "%s: no 'label' tensor, but the model is "
					"class-conditional", input->path);
		CDM_TRY(input_tensor(r->nn, input, "label", 2, ld, 1, &r->labels, err));
	}
	int64_t step = 0;
	if (o->resume)
		CDM_TRY(resume_step(r, &step, err));
	if (step > 0)
		CDM_TRY(load_state(r, step, err));
	else
		CDM_TRY(cdm_sample_party_seed(r->o, cdm_mpc_id(r->m), r->seed, err));
	CDM_TRY(cdm_noise_new(&r->noise, r->m, r->seed, err));
	if (step > 0)
		return 0;
	if (cdm_share_find(input, "noise"))
		return input_tensor(r->nn, input, "noise", 4, r->shape, 0, &r->x, err);
	cdm_mpc_set_label(r->m, "noise");
	return cdm_sample_joint_tensor(r->nn, r->noise, r->shape, 0, &r->x, err);
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Step k's session: seeds from this party's seed and k (one round). */
static int step_session(struct run *r, int64_t k, struct cdm_err *err)
{
	uint8_t s[CDM_SEED_BYTES];
	cdm_prg_derive(r->seed, "step-session", (uint64_t)k, s);
	struct cdm_mpc_opts mo = {.frac_bits = cdm_mpc_frac(r->m), .seed = s};
	int rc = cdm_mpc_new(&r->sm, cdm_mpc_net(r->m), &mo, err);
	memset(s, 0, sizeof s);
	CDM_TRY(rc);
	return cdm_nn_secure_set_mpc(r->nn, r->sm, err);
}

/* Close the step's session: a fresh sharing id from its common stream
 * (for the checkpoint or the output), its costs to the result. */
static void end_session(struct run *r)
{
	uint8_t idb[CDM_SHARE_ID_LEN / 2];
	cdm_prg_bytes(cdm_mpc_common_prg(r->sm), idb, sizeof idb);
	for (size_t i = 0; i < sizeof idb; i++)
		snprintf(r->step_id + 2 * i, 3, "%02x", idb[i]);
	add_costs(r->res, r->sm, NULL);
	struct cdm_err ignored;
	cdm_nn_secure_set_mpc(r->nn, r->m, &ignored);
	cdm_mpc_free(r->sm);
	r->sm = NULL;
}

static int one_step(struct run *r, int64_t k, struct cdm_err *err)
{
	struct cdm_step_coefs c;
	cdm_tensor *eps = NULL;
	double t[CDM_SAMPLE_MAX_BATCH];
	CDM_TRY(cdm_sampler_coefs(r->sampler, k, &c, err));
	for (int64_t b = 0; b < r->shape[0]; b++)
		t[b] = (double)c.t;
	int rc = cdm_unet_forward(r->unet, r->x, t, r->labels, &eps, err);
	if (rc == 0)
		rc = cdm_sample_advance(r->nn, r->sm, r->noise, r->sampler, k, r->shape, eps, &r->x,
					&r->x0_prev, err);
	cdm_nn_free(r->nn, eps);
	return rc;
}

/* After `done` completed steps: this party's checkpoint, then the older
 * ones beyond the newest two removed. */
static int checkpoint(struct run *r, int64_t done, struct cdm_err *err)
{
	struct ckpt_state st;
	memset(&st, 0, sizeof st);
	st.step = done;
	memcpy(st.id, r->step_id, sizeof st.id);
	memcpy(st.seed, r->seed, sizeof st.seed);
	st.x = *cdm_nn_secure_shr(r->x); /* borrowed views: not cleared below */
	if (r->x0_prev)
		st.x0_prev = *cdm_nn_secure_shr(r->x0_prev);
	int id = cdm_mpc_id(r->m);
	int rc = ckpt_write(r->o->checkpoint_dir, id, cdm_mpc_frac(r->m), r->run, r->shape, &st,
			    err);
	memset(st.seed, 0, sizeof st.seed);
	if (rc < 0)
		return rc;
	ckpt_prune(r->o->checkpoint_dir, id, r->run, done, r->last_ckpt);
	r->last_ckpt = done;
	return 0;
}

int cdm_sample_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		   const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		   struct cdm_err *err)
{
	struct run r;
	memset(&r, 0, sizeof r);
	memset(res, 0, sizeof *res);
	r.m = m;
	r.o = o;
	r.res = res;
	r.last_ckpt = -1;
	if (o->steps < 1)
		return cdm_fail(err, CDM_EINPUT, "steps %lld: need at least 1", (long long)o->steps);
	if ((model && cdm_share_meta(model, CDM_SD_PIPELINE_KEY)) ||
	    (input && cdm_share_meta(input, CDM_SD_PIPELINE_KEY)) ||
	    (o->public_model && cdm_sample_sd_is_pipeline(o->public_model))) /* SD */
		return cdm_sample_sd_run(m, model, input, o, res, err);
	if (o->checkpoint_every < 0)
		return cdm_fail(err, CDM_EINPUT, "checkpoint every %lld steps: need at least 1",
				(long long)o->checkpoint_every);
	int rc = setup(&r, model, input, err);
	int64_t steps = rc == 0 ? cdm_sampler_steps(r.sampler) : 0;
	int64_t every = o->checkpoint_every ? o->checkpoint_every : CKPT_EVERY_DEFAULT;
	res->resumed_from = r.start;
	/* the step sessions charge their own costs; m's label spans them */
	cdm_mpc_set_label(m, "steps");
	for (int64_t k = r.start; rc == 0 && k < steps; k++) {
		rc = step_session(&r, k, err);
		if (rc == 0)
			rc = one_step(&r, k, err);
		if (r.sm)
			end_session(&r);
		if (rc == 0 && o->checkpoint_dir && (k + 1) % every == 0 && k + 1 < steps)
			rc = checkpoint(&r, k + 1, err);
		if (rc == 0 && o->progress)
			o->progress(o->progress_arg, k + 1, steps);
	}
	cdm_mpc_set_label(m, "other");
	add_costs(res, m, "steps");
	if (rc == 0) {
		memcpy(res->sharing_id, r.step_id, sizeof res->sharing_id);
		memcpy(res->shape, r.shape, sizeof r.shape);
		rc = cdm_shr_copy(&res->x, cdm_nn_secure_shr(r.x), err);
	}
	run_free(&r);
	return rc;
}

void cdm_sample_result_clear(struct cdm_sample_result *res)
{
	cdm_shr_free(&res->x);
	memset(res, 0, sizeof *res);
}

int cdm_sample_end_checkpoints(cdm_mpc *m, const struct cdm_sample_opts *o,
			       const struct cdm_sample_result *res, int keep,
			       struct cdm_err *err)
{
	if (!o->checkpoint_dir)
		return 0;
	/* every party takes part in the round, keep or not, so that a party
	 * with --keep-checkpoints never leaves the others waiting */
	uint8_t mine = 1, in[CDM_PARTIES] = {0};
	CDM_TRY(exchange(m, &mine, &in[0], &in[1], &in[2], 1, err));
	if (keep)
		return 0;
	int n = ckpt_remove_run(o->checkpoint_dir, cdm_mpc_id(m), res->run, err);
	return n < 0 ? n : 0;
}

int cdm_sample_write_output(const char *path, int party, int frac_bits,
			    const struct cdm_sample_result *res, const char *model_sharing,
			    const char *input_sharing, struct cdm_err *err)
{
	cdm_share_writer *w = NULL;
	CDM_TRY(cdm_share_writer_new(&w, party, frac_bits, res->sharing_id, "output", err));
	int rc = cdm_share_writer_add(w, "x", 4, res->shape, res->x.a, res->x.b, err);
	if (rc == 0 && model_sharing)
		rc = cdm_share_writer_meta(w, "model_sharing", model_sharing, err);
	if (rc == 0 && input_sharing)
		rc = cdm_share_writer_meta(w, "input_sharing", input_sharing, err);
	if (rc == 0)
		rc = cdm_share_writer_save(w, path, 0, err);
	cdm_share_writer_free(w);
	return rc;
}

/* ---- for the Stable Diffusion loop (sample_impl.h) -------------------------------- */

int cdm_sample_agree(cdm_mpc *m, const char *digest, struct cdm_err *err)
{
	_Static_assert(CDM_SAMPLE_DIGEST_LEN == DIGEST_LEN, "digest length");
	return agree(m, digest, err);
}

int cdm_sample_input_tensor(cdm_nn *nn, cdm_share *in, const char *name, int ndim,
			    const int64_t *shape, int integer, cdm_tensor **out,
			    struct cdm_err *err)
{
	return input_tensor(nn, in, name, ndim, shape, integer, out, err);
}

void cdm_sample_add_costs(struct cdm_sample_result *res, const cdm_mpc *m, const char *skip)
{
	add_costs(res, m, skip);
}

int cdm_sample_parse_shape(const cdm_share *in, int64_t shape[4], struct cdm_err *err)
{
	return parse_shape(in, shape, err);
}
