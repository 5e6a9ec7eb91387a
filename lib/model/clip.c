/*
 * model/clip: CLIPTextModel over the nn op table (see clip.h); structure as
 * transformers' modeling_clip.py CLIPTextTransformer.
 */
#include "clip.h"

#include <math.h>
#include <stdio.h>

#include "blocks.h"

struct layer {
	struct cdm_wb ln1, q, k, v, o, ln2, fc1, fc2;
};

struct cdm_clip {
	cdm_nn *nn;
	struct cdm_clip_config cfg;
	struct cdm_blk b;
	cdm_tensor *tok_table; /* [vocab, D] */
	cdm_tensor *pos_table; /* [max_positions, D] */
	struct layer *layers;  /* [num_layers] */
	struct cdm_wb final_ln;
};

static int bind_all(cdm_clip *c, struct cdm_err *err)
{
	const struct cdm_clip_config *f = &c->cfg;
	struct cdm_blk *b = &c->b;
	int64_t d = f->hidden_size, m = f->intermediate_size;
	char p[256];
	CDM_TRY(cdm_blk_bind(b, &c->tok_table, "text_model.embeddings.token_embedding.weight",
			     f->vocab_size, d, 0, 0, err));
	CDM_TRY(cdm_blk_bind(b, &c->pos_table, "text_model.embeddings.position_embedding.weight",
			     f->max_positions, d, 0, 0, err));
	if (!(c->layers = cdm_zalloc((size_t)f->num_layers, sizeof *c->layers, err)))
		return CDM_ENOMEM;
	for (int64_t l = 0; l < f->num_layers; l++) {
		struct layer *y = &c->layers[l];
		snprintf(p, sizeof p, "text_model.encoder.layers.%lld", (long long)l);
		CDM_TRY(cdm_blk_bind_wb(b, &y->ln1, p, "layer_norm1", d, 0, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->q, p, "self_attn.q_proj", d, d, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->k, p, "self_attn.k_proj", d, d, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->v, p, "self_attn.v_proj", d, d, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->o, p, "self_attn.out_proj", d, d, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->ln2, p, "layer_norm2", d, 0, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->fc1, p, "mlp.fc1", m, d, 0, 0, 1, err));
		CDM_TRY(cdm_blk_bind_wb(b, &y->fc2, p, "mlp.fc2", d, m, 0, 0, 1, err));
	}
	return cdm_blk_bind_wb(b, &c->final_ln, "text_model.final_layer_norm", "", d, 0, 0, 0, 1,
			       err);
}

int cdm_clip_new(cdm_clip **out, cdm_nn *nn, const struct cdm_clip_config *cfg,
		 struct cdm_err *err)
{
	*out = NULL;
	cdm_clip *c = cdm_zalloc(1, sizeof *c, err);
	if (!c)
		return CDM_ENOMEM;
	c->nn = nn;
	c->b.nn = nn;
	c->cfg = *cfg;
	int rc = bind_all(c, err);
	if (rc < 0) {
		cdm_clip_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int cdm_clip_load(cdm_clip **out, cdm_nn *nn, const char *dir, struct cdm_err *err)
{
	struct cdm_model_paths p;
	struct cdm_clip_config cfg;
	*out = NULL;
	CDM_TRY(cdm_sd_locate(&p, dir, CDM_SD_TEXT_ENCODER, err));
	CDM_TRY(cdm_clip_config_load(&cfg, p.config, err));
	CDM_TRY(cdm_nn_load_weights(nn, p.weights, err));
	return cdm_clip_new(out, nn, &cfg, err);
}

void cdm_clip_free(cdm_clip *c)
{
	if (!c)
		return;
	cdm_nn *nn = c->nn;
	cdm_nn_free(nn, c->tok_table);
	cdm_nn_free(nn, c->pos_table);
	for (int64_t l = 0; c->layers && l < c->cfg.num_layers; l++) {
		struct layer *y = &c->layers[l];
		struct cdm_wb *w[] = {&y->ln1, &y->q, &y->k, &y->v, &y->o, &y->ln2, &y->fc1, &y->fc2};
		for (size_t i = 0; i < sizeof w / sizeof *w; i++)
			cdm_blk_free_wb(nn, w[i]);
	}
	cdm_free(c->layers);
	cdm_blk_free_wb(nn, &c->final_ln);
	cdm_free(c);
}

const struct cdm_clip_config *cdm_clip_config(const cdm_clip *c)
{
	return &c->cfg;
}

int64_t cdm_clip_params(const cdm_clip *c)
{
	return c->b.params;
}

/* h += out_proj(causal_mha(LN1(h))); h += fc2(act(fc1(LN2(h)))), h [B,L,D]. */
static int layer_fwd(cdm_clip *c, const struct layer *y, cdm_tensor **h, struct cdm_err *err)
{
	cdm_nn *nn = c->nn;
	const struct cdm_clip_config *f = &c->cfg;
	cdm_tensor *n = NULL, *q = NULL, *k = NULL, *v = NULL, *a = NULL, *s = NULL;
	double scale = 1.0 / sqrt((double)(f->hidden_size / f->num_heads));
	int rc;
	if ((rc = cdm_nn_layer_norm(nn, *h, f->layer_norm_eps, y->ln1.w, y->ln1.b, &n, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, n, y->q.w, y->q.b, &q, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, n, y->k.w, y->k.b, &k, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, n, y->v.w, y->v.b, &v, err)) < 0 ||
	    (rc = cdm_nn_attention_causal(nn, q, k, v, (int)f->num_heads, scale, &a, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &a, cdm_nn_linear(nn, a, y->o.w, y->o.b, &s, err), &s)) < 0 ||
	    (rc = cdm_blk_replace(nn, h, cdm_nn_add(nn, *h, a, &s, err), &s)) < 0)
		goto done;
	cdm_nn_free(nn, n), n = NULL;
	cdm_nn_free(nn, a), a = NULL;
	enum cdm_act act = f->quick_gelu ? CDM_ACT_QUICK_GELU : CDM_ACT_GELU;
	if ((rc = cdm_nn_layer_norm(nn, *h, f->layer_norm_eps, y->ln2.w, y->ln2.b, &n, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, n, y->fc1.w, y->fc1.b, &a, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &a, cdm_nn_act(nn, a, act, &s, err), &s)) < 0 ||
	    (rc = cdm_blk_replace(nn, &a, cdm_nn_linear(nn, a, y->fc2.w, y->fc2.b, &s, err), &s)) < 0)
		goto done;
	rc = cdm_blk_replace(nn, h, cdm_nn_add(nn, *h, a, &s, err), &s);
done:
	cdm_nn_free(nn, n);
	cdm_nn_free(nn, q);
	cdm_nn_free(nn, k);
	cdm_nn_free(nn, v);
	cdm_nn_free(nn, a);
	cdm_nn_free(nn, s);
	return rc;
}

int cdm_clip_forward(cdm_clip *c, const cdm_tensor *onehot, int64_t batch, int64_t len,
		     cdm_tensor **out, struct cdm_err *err)
{
	cdm_nn *nn = c->nn;
	const struct cdm_clip_config *f = &c->cfg;
	cdm_tensor *h = NULL, *pe = NULL, *po = NULL, *n = NULL;
	int64_t *pos = NULL;
	int rc;
	*out = NULL;
	if (batch < 1 || len < 1 || len > f->max_positions)
		return cdm_fail(err, CDM_EINPUT, "ids: %lld tokens per sequence, the text encoder "
				"takes 1..%lld", (long long)len, (long long)f->max_positions);
	if (onehot->ndim != 2 || onehot->dim[0] != batch * len || onehot->dim[1] != f->vocab_size)
		return cdm_fail(err, CDM_EINPUT, "text encoder: one-hot ids must be [%lld,%lld]",
				(long long)(batch * len), (long long)f->vocab_size);
	/* positions 0..L-1 of every sequence (public) */
	if (!(pos = cdm_alloc((size_t)(batch * len), sizeof *pos, err)))
		return CDM_ENOMEM;
	for (int64_t i = 0; i < batch * len; i++)
		pos[i] = i % len;
	int64_t d3[3] = {batch, len, f->hidden_size};
	if ((rc = cdm_nn_embed(nn, onehot, c->tok_table, &h, err)) < 0 ||
	    (rc = cdm_nn_onehot(nn, pos, batch * len, f->max_positions, &po, err)) < 0 ||
	    (rc = cdm_nn_embed(nn, po, c->pos_table, &pe, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &h, cdm_nn_add(nn, h, pe, &n, err), &n)) < 0 ||
	    (rc = cdm_blk_replace(nn, &h, cdm_nn_reshape(nn, h, 3, d3, &n, err), &n)) < 0)
		goto done;
	for (int64_t l = 0; l < f->num_layers; l++)
		if ((rc = layer_fwd(c, &c->layers[l], &h, err)) < 0)
			goto done;
	rc = cdm_nn_layer_norm(nn, h, f->layer_norm_eps, c->final_ln.w, c->final_ln.b, out, err);
done:
	cdm_free(pos);
	cdm_nn_free(nn, h);
	cdm_nn_free(nn, pe);
	cdm_nn_free(nn, po);
	cdm_nn_free(nn, n);
	return rc;
}

int cdm_clip_encode_ids(cdm_clip *c, const int64_t *ids, int64_t batch, int64_t len,
			cdm_tensor **out, struct cdm_err *err)
{
	int64_t v = c->cfg.vocab_size;
	*out = NULL;
	if (batch < 1 || len < 1 || len > c->cfg.max_positions)
		return cdm_fail(err, CDM_EINPUT, "ids: %lld tokens per sequence, the text encoder "
				"takes 1..%lld", (long long)len, (long long)c->cfg.max_positions);
	for (int64_t i = 0; i < batch * len; i++)
		if (ids[i] < 0 || ids[i] >= v)
			return cdm_fail(err, CDM_EINPUT, "ids: token id %lld (sequence %lld, position "
					"%lld) is outside the vocabulary 0..%lld", (long long)ids[i],
					(long long)(i / len), (long long)(i % len), (long long)(v - 1));
	cdm_tensor *oh = NULL;
	CDM_TRY(cdm_nn_onehot(c->nn, ids, batch * len, v, &oh, err));
	int rc = cdm_clip_forward(c, oh, batch, len, out, err);
	cdm_nn_free(c->nn, oh);
	return rc;
}
