/*
 * sample/noise: jointly generated Gaussian sharings (see sample.h). The
 * masks r_j come from a seed s_j that party j draws and sends to party j-1
 * only, so each seed is known to exactly the two parties that hold
 * component j of a replicated sharing.
 */
#include "sample.h"

#include <math.h>
#include <string.h>

#include "../prg/prg.h"
#include "../ring/ring.h"

struct cdm_noise {
	cdm_mpc *m;      /* borrowed session */
	cdm_prg priv;    /* this party's private Gaussian stream */
	cdm_prg mask_a;  /* r_i:     seed s_i (parties i-1 and i) */
	cdm_prg mask_b;  /* r_{i+1}: seed s_{i+1} (parties i and i+1) */
	/* the base seeds, kept so that cdm_noise_seek can restart the streams */
	uint8_t seed_priv[CDM_SEED_BYTES], seed_a[CDM_SEED_BYTES], seed_b[CDM_SEED_BYTES];
};

void cdm_noise_free(cdm_noise *g)
{
	if (!g)
		return;
	cdm_prg_free(&g->priv);
	cdm_prg_free(&g->mask_a);
	cdm_prg_free(&g->mask_b);
	memset(g, 0, sizeof *g); /* the seeds are secret */
	cdm_free(g);
}

int cdm_noise_new(cdm_noise **out, cdm_mpc *m, const uint8_t *seed, struct cdm_err *err)
{
	int id = cdm_mpc_id(m), next = (id + 1) % 3, prev = (id + 2) % 3;
	uint8_t mine[CDM_SEED_BYTES], theirs[CDM_SEED_BYTES], ps[CDM_SEED_BYTES];
	*out = NULL;
	cdm_noise *g = cdm_zalloc(1, sizeof *g, err);
	if (!g)
		return CDM_ENOMEM;
	g->m = m;
	/* Own mask seed s_i: from the party's seed when given (so that a
	 * restarted party draws the same masks), else from the OS. */
	int rc = 0;
	if (seed)
		cdm_prg_derive(seed, "noise-mask", (uint64_t)id, mine);
	else
		rc = cdm_seed_random(mine, err);
	if (rc == 0) {
		struct cdm_xfer x = {0};
		x.send[prev] = mine;
		x.send_len[prev] = sizeof mine;
		x.recv[next] = theirs;
		x.recv_len[next] = sizeof theirs;
		rc = cdm_net_round(cdm_mpc_net(m), &x, err);
	}
	/* private stream: OS seed, or the given seed and the party id */
	if (rc == 0 && seed)
		cdm_prg_derive(seed, "noise-private", (uint64_t)id, ps);
	else if (rc == 0)
		rc = cdm_seed_random(ps, err);
	if (rc == 0)
		rc = cdm_prg_init(&g->priv, ps, err);
	if (rc == 0)
		rc = cdm_prg_init(&g->mask_a, mine, err);
	if (rc == 0)
		rc = cdm_prg_init(&g->mask_b, theirs, err);
	memcpy(g->seed_priv, ps, CDM_SEED_BYTES);
	memcpy(g->seed_a, mine, CDM_SEED_BYTES);
	memcpy(g->seed_b, theirs, CDM_SEED_BYTES);
	memset(mine, 0, sizeof mine);
	memset(ps, 0, sizeof ps);
	if (rc < 0) {
		cdm_noise_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

/* Restart stream `g` at sub-stream `index` of its base seed. */
static int reseed(cdm_prg *g, const uint8_t base[CDM_SEED_BYTES], uint64_t index,
		  struct cdm_err *err)
{
	uint8_t s[CDM_SEED_BYTES];
	cdm_prg_derive(base, "noise-draw", index, s);
	cdm_prg_free(g);
	int rc = cdm_prg_init(g, s, err);
	memset(s, 0, sizeof s);
	return rc;
}

int cdm_noise_seek(cdm_noise *g, uint64_t index, struct cdm_err *err)
{
	CDM_TRY(reseed(&g->priv, g->seed_priv, index, err));
	CDM_TRY(reseed(&g->mask_a, g->seed_a, index, err));
	return reseed(&g->mask_b, g->seed_b, index, err);
}

int cdm_noise_draw(cdm_noise *g, cdm_shr *out, size_t n, struct cdm_err *err)
{
	cdm_mpc *m = g->m;
	int F = cdm_mpc_frac(m), id = cdm_mpc_id(m);
	if (!out->a && !out->n)
		CDM_TRY(cdm_shr_new(out, n, err));
	else if (out->n != n)
		return cdm_fail(err, CDM_EINTERNAL, "noise: output holds %zu elements, not %zu",
				out->n, n);
	double *d = cdm_alloc(n, sizeof *d, err);
	uint64_t *r = cdm_alloc(n, 16, err);
	int rc = !d || !r ? CDM_ENOMEM : 0;
	if (rc == 0) {
		cdm_prg_gauss(&g->priv, d, n);
		cdm_prg_u64(&g->mask_a, r, n);
		cdm_prg_u64(&g->mask_b, r + n, n);
		double s = 1.0 / sqrt(3.0);
		/* z_i = enc(g_i/sqrt3) + r_i - r_{i+1}: the r cancel in the sum */
		for (size_t k = 0; k < n; k++)
			out->a[k] = cdm_fxp_from_double(d[k] * s, F) + r[k] - r[n + k];
		struct cdm_xfer x = {0};
		int next = (id + 1) % 3, prev = (id + 2) % 3;
		x.send[prev] = out->a;
		x.send_len[prev] = n * 8;
		x.recv[next] = out->b;
		x.recv_len[next] = n * 8;
		rc = cdm_net_round(cdm_mpc_net(m), &x, err);
	}
	cdm_free(d);
	cdm_free(r);
	return rc;
}
