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

#define DIGEST_LEN 384

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

/* "key=value" fields the three parties must agree on. */
static void digest(char *d, const cdm_share *model, const cdm_share *input,
		   const struct cdm_sample_opts *o, int frac)
{
	memset(d, 0, DIGEST_LEN);
	snprintf(d, DIGEST_LEN,
		 "model_sharing=%s input_sharing=%s sampler=%s steps=%lld eta=%.17g "
		 "protocols=%s frac_bits=%d",
		 model->sharing_id, input->sharing_id, cdm_sampler_kind_name(o->sampler),
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

/* One round: the digest to both peers and from both. */
static int agree(cdm_mpc *m, const char *d, struct cdm_err *err)
{
	int id = cdm_mpc_id(m), next = (id + 1) % 3, prev = (id + 2) % 3;
	char in[CDM_PARTIES][DIGEST_LEN];
	struct cdm_xfer x = {0};
	for (int p = 0; p < CDM_PARTIES; p++) {
		if (p == id)
			continue;
		x.send[p] = d;
		x.send_len[p] = DIGEST_LEN;
		x.recv[p] = in[p];
		x.recv_len[p] = DIGEST_LEN;
	}
	CDM_TRY(cdm_net_round(cdm_mpc_net(m), &x, err));
	int peers[2] = {next, prev};
	for (int k = 0; k < 2; k++) {
		in[peers[k]][DIGEST_LEN - 1] = 0;
		if (memcmp(d, in[peers[k]], DIGEST_LEN) != 0)
			return mismatch(d, in[peers[k]], peers[k], err);
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
	cdm_mpc *m;
	cdm_nn *nn;
	cdm_unet *unet;
	cdm_sampler *sampler;
	cdm_noise *noise;
	cdm_tensor *x, *labels, *x0_prev;
	int64_t shape[4];
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
}

static int joint_tensor(struct run *r, cdm_tensor **out, struct cdm_err *err)
{
	cdm_shr s = {0};
	size_t n = (size_t)(r->shape[0] * r->shape[1] * r->shape[2] * r->shape[3]);
	int rc = cdm_noise_draw(r->noise, &s, n, err);
	if (rc == 0)
		rc = cdm_nn_secure_wrap(r->nn, 4, r->shape, &s, 0, out, err);
	cdm_shr_free(&s);
	return rc;
}

static int setup(struct run *r, cdm_share *model, cdm_share *input,
		 const struct cdm_sample_opts *o, struct cdm_err *err)
{
	struct cdm_unet_config ucfg;
	struct cdm_sched_config scfg;
	int id = cdm_mpc_id(r->m);
	char d[DIGEST_LEN];
	CDM_TRY(cdm_sample_check_share(model, id, "model", err));
	CDM_TRY(cdm_sample_check_share(input, id, "input", err));
	if (model->frac_bits != cdm_mpc_frac(r->m) || input->frac_bits != cdm_mpc_frac(r->m))
		return cdm_fail(err, CDM_EINPUT, "%s has %d fraction bits and %s %d; the session "
				"uses %d", model->path, model->frac_bits, input->path,
				input->frac_bits, cdm_mpc_frac(r->m));
	CDM_TRY(parse_shape(input, r->shape, err));
	digest(d, model, input, o, cdm_mpc_frac(r->m));
	cdm_mpc_set_label(r->m, "setup");
	CDM_TRY(agree(r->m, d, err));
	CDM_TRY(cdm_noise_new(&r->noise, r->m, o->noise_seed, err));
	CDM_TRY(load_configs(model, o->sampler, &ucfg, &scfg, err));
	if (scfg.thresholding) {
		cdm_sched_config_clear(&scfg);
		return cdm_fail(err, CDM_EINPUT, "%s: scheduler_config has thresholding=true; "
				"dynamic thresholding (a quantile) is not supported on shares",
				model->path);
	}
	int rc = cdm_sampler_new(&r->sampler, &scfg, o->sampler, o->steps, o->eta, err);
	cdm_sched_config_clear(&scfg);
	CDM_TRY(rc);
	CDM_TRY(cdm_nn_secure_new(&r->nn, r->m, o->suite, err));
	CDM_TRY(cdm_nn_secure_bind(r->nn, model, err));
	rc = cdm_unet_new(&r->unet, r->nn, &ucfg, err);
	if (rc < 0) {
		cdm_err_prefix(err, "%s: ", model->path);
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
	if (cdm_share_find(input, "noise"))
		return input_tensor(r->nn, input, "noise", 4, r->shape, 0, &r->x, err);
	cdm_mpc_set_label(r->m, "noise");
	return joint_tensor(r, &r->x, err);
}

/* ---- the loop ------------------------------------------------------------------------ */

static int one_step(struct run *r, int64_t k, struct cdm_err *err)
{
	struct cdm_step_coefs c;
	cdm_tensor *eps = NULL, *z = NULL, *next = NULL, *x0 = NULL;
	double t[CDM_SAMPLE_MAX_BATCH];
	CDM_TRY(cdm_sampler_coefs(r->sampler, k, &c, err));
	for (int64_t b = 0; b < r->shape[0]; b++)
		t[b] = (double)c.t;
	int rc = cdm_unet_forward(r->unet, r->x, t, r->labels, &eps, err);
	if (rc == 0 && c.needs_noise) {
		cdm_mpc_set_label(r->m, "noise");
		rc = joint_tensor(r, &z, err);
	}
	if (rc == 0) {
		cdm_nn_secure_set_phase(r->nn, "sampler");
		rc = cdm_sampler_step(r->sampler, r->nn, k, r->x, eps, z, r->x0_prev, &next, &x0,
				      err);
		cdm_nn_secure_set_phase(r->nn, NULL);
	}
	if (rc == 0) {
		cdm_nn_free(r->nn, r->x);
		cdm_nn_free(r->nn, r->x0_prev);
		r->x = next;
		r->x0_prev = x0;
	}
	cdm_nn_free(r->nn, eps);
	cdm_nn_free(r->nn, z);
	return rc;
}

int cdm_sample_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		   const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		   struct cdm_err *err)
{
	struct run r;
	memset(&r, 0, sizeof r);
	memset(res, 0, sizeof *res);
	r.m = m;
	if (o->steps < 1)
		return cdm_fail(err, CDM_EINPUT, "steps %lld: need at least 1", (long long)o->steps);
	int rc = setup(&r, model, input, o, err);
	int64_t steps = rc == 0 ? cdm_sampler_steps(r.sampler) : 0;
	for (int64_t k = 0; rc == 0 && k < steps; k++) {
		rc = one_step(&r, k, err);
		if (rc == 0 && o->progress)
			o->progress(o->progress_arg, k + 1, steps);
	}
	if (rc == 0) {
		/* the output sharing id: random, common to the three parties */
		uint8_t idb[CDM_SHARE_ID_LEN / 2];
		cdm_prg_bytes(cdm_mpc_common_prg(m), idb, sizeof idb);
		for (size_t i = 0; i < sizeof idb; i++)
			snprintf(res->sharing_id + 2 * i, 3, "%02x", idb[i]);
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
