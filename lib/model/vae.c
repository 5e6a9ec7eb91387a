/*
 * model/vae: AutoencoderKL.decode over the nn op table (see vae.h);
 * structure as diffusers' autoencoder_kl.py and vae.py Decoder.
 */
#include "vae.h"

#include <stdio.h>

#include "blocks.h"

#define VAE_EPS 1e-6 /* every GroupNorm of the decoder */

struct upblock {
	int nres;
	struct cdm_blk_resnet *res; /* [nres] */
	struct cdm_wb samp;         /* upsamplers.0.conv; w NULL after the last block */
};

struct cdm_vae {
	cdm_nn *nn;
	struct cdm_vae_config cfg;
	struct cdm_blk b;
	struct cdm_wb pqc, conv_in, norm_out, conv_out; /* pqc.w NULL without post_quant_conv */
	struct cdm_blk_resnet mid_res[2];
	struct cdm_blk_attn mid_attn;
	struct upblock up[CDM_UNET_MAX_BLOCKS];
};

static int bind_all(cdm_vae *v, struct cdm_err *err)
{
	const struct cdm_vae_config *c = &v->cfg;
	struct cdm_blk *b = &v->b;
	int n = c->n_blocks;
	int64_t g = c->norm_num_groups, lat = c->latent_channels, top = c->boc[n - 1];
	/* no time embedding in the decoder */
	const struct cdm_blk_resnet_spec rs = {.groups = g, .eps = VAE_EPS, .osf = 1.0,
					       .act = CDM_ACT_SILU};
	char p[256];
	if (c->use_post_quant_conv)
		CDM_TRY(cdm_blk_bind_wb(b, &v->pqc, "post_quant_conv", "", lat, lat, 1, 1, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &v->conv_in, "decoder.conv_in", "", top, lat, 3, 3, 1, err));
	CDM_TRY(cdm_blk_resnet_bind(b, &v->mid_res[0], "decoder.mid_block.resnets.0", top, top, &rs,
				    err));
	if (c->mid_attention)
		CDM_TRY(cdm_blk_attn_bind(b, &v->mid_attn, "decoder.mid_block.attentions.0", top, 0,
					  g, VAE_EPS, 1.0, err));
	CDM_TRY(cdm_blk_resnet_bind(b, &v->mid_res[1], "decoder.mid_block.resnets.1", top, top, &rs,
				    err));
	int64_t cout = top;
	for (int i = 0; i < n; i++) {
		struct upblock *u = &v->up[i];
		int64_t cin = cout;
		cout = c->boc[n - 1 - i];
		u->nres = (int)c->layers_per_block + 1;
		if (!(u->res = cdm_zalloc((size_t)u->nres, sizeof *u->res, err)))
			return CDM_ENOMEM;
		for (int j = 0; j < u->nres; j++) {
			snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
			CDM_TRY(cdm_blk_resnet_bind(b, &u->res[j], p, j ? cout : cin, cout, &rs,
						    err));
		}
		if (i < n - 1) {
			snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0", i);
			CDM_TRY(cdm_blk_bind_wb(b, &u->samp, p, "conv", cout, cout, 3, 3, 1, err));
		}
	}
	CDM_TRY(cdm_blk_check_groups(g, c->boc[0], "decoder.conv_norm_out", "", err));
	CDM_TRY(cdm_blk_bind_wb(b, &v->norm_out, "decoder.conv_norm_out", "", c->boc[0], 0, 0, 0, 1,
				err));
	return cdm_blk_bind_wb(b, &v->conv_out, "decoder.conv_out", "", c->out_channels, c->boc[0],
			       3, 3, 1, err);
}

int cdm_vae_new(cdm_vae **out, cdm_nn *nn, const struct cdm_vae_config *cfg,
		struct cdm_err *err)
{
	*out = NULL;
	cdm_vae *v = cdm_zalloc(1, sizeof *v, err);
	if (!v)
		return CDM_ENOMEM;
	v->nn = nn;
	v->b.nn = nn;
	v->cfg = *cfg;
	int rc = bind_all(v, err);
	if (rc < 0) {
		cdm_vae_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int cdm_vae_load(cdm_vae **out, cdm_nn *nn, const char *dir, struct cdm_err *err)
{
	struct cdm_model_paths p;
	struct cdm_vae_config cfg;
	*out = NULL;
	CDM_TRY(cdm_sd_locate(&p, dir, CDM_SD_VAE, err));
	CDM_TRY(cdm_vae_config_load(&cfg, p.config, err));
	CDM_TRY(cdm_nn_load_weights(nn, p.weights, err));
	return cdm_vae_new(out, nn, &cfg, err);
}

void cdm_vae_free(cdm_vae *v)
{
	if (!v)
		return;
	cdm_nn *nn = v->nn;
	cdm_blk_free_wb(nn, &v->pqc);
	cdm_blk_free_wb(nn, &v->conv_in);
	cdm_blk_free_wb(nn, &v->norm_out);
	cdm_blk_free_wb(nn, &v->conv_out);
	cdm_blk_resnet_free(nn, &v->mid_res[0]);
	cdm_blk_resnet_free(nn, &v->mid_res[1]);
	cdm_blk_attn_free(nn, &v->mid_attn);
	for (int i = 0; i < CDM_UNET_MAX_BLOCKS; i++) {
		for (int j = 0; v->up[i].res && j < v->up[i].nres; j++)
			cdm_blk_resnet_free(nn, &v->up[i].res[j]);
		cdm_free(v->up[i].res);
		cdm_blk_free_wb(nn, &v->up[i].samp);
	}
	cdm_free(v);
}

const struct cdm_vae_config *cdm_vae_config(const cdm_vae *v)
{
	return &v->cfg;
}

int64_t cdm_vae_params(const cdm_vae *v)
{
	return v->b.params;
}

int cdm_vae_check_input(const cdm_vae *v, int ndim, const int64_t *dim, struct cdm_err *err)
{
	char b[96];
	if (ndim != 4 || dim[1] != v->cfg.latent_channels)
		return cdm_fail(err, CDM_EINPUT, "z: shape %s, expected [B,%lld,h,w]",
				cdm_shape_str(b, sizeof b, ndim, dim),
				(long long)v->cfg.latent_channels);
	return 0;
}

int cdm_vae_decode(cdm_vae *v, const cdm_tensor *z, cdm_tensor **x, struct cdm_err *err)
{
	cdm_nn *nn = v->nn;
	const struct cdm_vae_config *c = &v->cfg;
	cdm_tensor *h = NULL, *n = NULL;
	int rc;
	*x = NULL;
	CDM_TRY(cdm_vae_check_input(v, z->ndim, z->dim, err));
#define STEP(call)                                                           \
	do {                                                                 \
		if ((rc = cdm_blk_replace(nn, &h, (call), &n)) < 0)          \
			goto done;                                           \
	} while (0)
	if (v->pqc.w) {
		if ((rc = cdm_blk_conv(nn, z, &v->pqc, 1, 0, 0, &h, err)) < 0)
			goto done;
		STEP(cdm_blk_conv(nn, h, &v->conv_in, 1, 1, 1, &n, err));
	} else if ((rc = cdm_blk_conv(nn, z, &v->conv_in, 1, 1, 1, &h, err)) < 0) {
		goto done;
	}
	STEP(cdm_blk_resnet_fwd(nn, &v->mid_res[0], h, NULL, &n, err));
	if (c->mid_attention)
		STEP(cdm_blk_attn_fwd(nn, &v->mid_attn, h, &n, err));
	STEP(cdm_blk_resnet_fwd(nn, &v->mid_res[1], h, NULL, &n, err));
	for (int i = 0; i < c->n_blocks; i++) {
		for (int j = 0; j < v->up[i].nres; j++)
			STEP(cdm_blk_resnet_fwd(nn, &v->up[i].res[j], h, NULL, &n, err));
		if (v->up[i].samp.w)
			STEP(cdm_blk_upsample(nn, h, &v->up[i].samp, &n, err));
	}
	STEP(cdm_nn_group_norm(nn, h, (int)c->norm_num_groups, VAE_EPS, v->norm_out.w,
			       v->norm_out.b, &n, err));
	STEP(cdm_nn_act(nn, h, CDM_ACT_SILU, &n, err));
	STEP(cdm_blk_conv(nn, h, &v->conv_out, 1, 1, 1, &n, err));
#undef STEP
	*x = h;
	h = NULL;
done:
	cdm_nn_free(nn, h);
	cdm_nn_free(nn, n);
	return rc;
}
