/* model/blocks: blocks shared by the models of lib/model (see blocks.h). */
#include "blocks.h"

#include <math.h>
#include <stdio.h>

int cdm_blk_bind(struct cdm_blk *b, cdm_tensor **out, const char *name, int64_t d0, int64_t d1,
		 int64_t d2, int64_t d3, struct cdm_err *err)
{
	int64_t dim[4] = {d0, d1, d2, d3};
	int nd = 0;
	while (nd < 4 && dim[nd])
		nd++;
	CDM_TRY(cdm_nn_weight(b->nn, name, nd, dim, out, err));
	b->params += cdm_tensor_numel(*out);
	return 0;
}

int cdm_blk_bind_wb(struct cdm_blk *b, struct cdm_wb *wb, const char *prefix, const char *part,
		    int64_t d0, int64_t d1, int64_t d2, int64_t d3, int bias, struct cdm_err *err)
{
	char name[512];
	const char *dot = *part ? "." : "";
	snprintf(name, sizeof name, "%s%s%s.weight", prefix, dot, part);
	CDM_TRY(cdm_blk_bind(b, &wb->w, name, d0, d1, d2, d3, err));
	if (!bias)
		return 0;
	snprintf(name, sizeof name, "%s%s%s.bias", prefix, dot, part);
	return cdm_blk_bind(b, &wb->b, name, d0, 0, 0, 0, err);
}

int cdm_blk_bind_proj(struct cdm_blk *b, struct cdm_wb *wb, const char *prefix,
		      const char *part, const char *legacy, int64_t o, int64_t i, int bias,
		      struct cdm_err *err)
{
	char name[512];
	snprintf(name, sizeof name, "%s.%s.weight", prefix, part);
	if (legacy && !cdm_nn_has_weight(b->nn, name)) {
		snprintf(name, sizeof name, "%s.%s.weight", prefix, legacy);
		if (cdm_nn_has_weight(b->nn, name))
			part = legacy;
	}
	return cdm_blk_bind_wb(b, wb, prefix, part, o, i, 0, 0, bias, err);
}

int cdm_blk_check_groups(int64_t groups, int64_t c, const char *prefix, const char *part,
			 struct cdm_err *err)
{
	if (groups < 1 || c % groups)
		return cdm_fail(err, CDM_EINPUT,
				"config: %lld groups do not divide the %lld channels of %s%s%s",
				(long long)groups, (long long)c, prefix, *part ? "." : "", part);
	return 0;
}

void cdm_blk_free_wb(cdm_nn *nn, struct cdm_wb *wb)
{
	cdm_nn_free(nn, wb->w);
	cdm_nn_free(nn, wb->b);
	wb->w = wb->b = NULL;
}

int cdm_blk_replace(cdm_nn *nn, cdm_tensor **h, int rc, cdm_tensor **next)
{
	if (rc < 0)
		return rc;
	cdm_nn_free(nn, *h);
	*h = *next; /* read after the call: argument order is unspecified */
	*next = NULL;
	return 0;
}

/* ---- resnet ------------------------------------------------------------------ */

int cdm_blk_resnet_bind(struct cdm_blk *b, struct cdm_blk_resnet *r, const char *prefix,
			int64_t cin, int64_t cout, const struct cdm_blk_resnet_spec *spec,
			struct cdm_err *err)
{
	int64_t g = spec->groups, td = spec->temb_dim;
	r->cin = cin;
	r->cout = cout;
	r->s = *spec;
	CDM_TRY(cdm_blk_check_groups(g, cin, prefix, "norm1", err));
	CDM_TRY(cdm_blk_check_groups(g, cout, prefix, "norm2", err));
	CDM_TRY(cdm_blk_bind_wb(b, &r->norm1, prefix, "norm1", cin, 0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &r->conv1, prefix, "conv1", cout, cin, 3, 3, 1, err));
	/* scale_shift projects to [scale | shift] */
	if (td)
		CDM_TRY(cdm_blk_bind_wb(b, &r->temb, prefix, "time_emb_proj",
					(spec->scale_shift ? 2 : 1) * cout, td, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &r->norm2, prefix, "norm2", cout, 0, 0, 0, 1, err));
	CDM_TRY(cdm_blk_bind_wb(b, &r->conv2, prefix, "conv2", cout, cout, 3, 3, 1, err));
	if (cin != cout)
		CDM_TRY(cdm_blk_bind_wb(b, &r->shortcut, prefix, "conv_shortcut", cout, cin, 1, 1, 1,
					err));
	return 0;
}

void cdm_blk_resnet_free(cdm_nn *nn, struct cdm_blk_resnet *r)
{
	cdm_blk_free_wb(nn, &r->norm1);
	cdm_blk_free_wb(nn, &r->conv1);
	cdm_blk_free_wb(nn, &r->temb);
	cdm_blk_free_wb(nn, &r->norm2);
	cdm_blk_free_wb(nn, &r->conv2);
	cdm_blk_free_wb(nn, &r->shortcut);
}

int cdm_blk_conv(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *wb, int stride, int p0,
		 int p1, cdm_tensor **out, struct cdm_err *err)
{
	int pad[4] = {p0, p0, p1, p1};
	return cdm_nn_conv2d(nn, x, wb->w, wb->b, stride, pad, out, err);
}

/* *h = norm2(*h) * (1 + t[:, :C]) + t[:, C:] (time_embedding_norm "scale_shift"). */
static int scale_shift(cdm_nn *nn, const struct cdm_blk_resnet *r, cdm_tensor **h,
		       const cdm_tensor *t, struct cdm_err *err)
{
	cdm_tensor *n = NULL, *a = NULL, *s = NULL;
	int g = (int)r->s.groups, rc;
	if ((rc = cdm_blk_replace(nn, h, cdm_nn_group_norm(nn, *h, g, r->s.eps, r->norm2.w,
							   r->norm2.b, &n, err), &n)) < 0 ||
	    (rc = cdm_nn_slice(nn, t, 0, r->cout, &a, err)) < 0 ||
	    (rc = cdm_nn_scale(nn, a, 1.0, 1.0, &s, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, h, cdm_nn_bcast_mul(nn, *h, s, &n, err), &n)) < 0)
		goto done;
	cdm_nn_free(nn, s), s = NULL;
	if ((rc = cdm_nn_slice(nn, t, r->cout, r->cout, &s, err)) < 0)
		goto done;
	rc = cdm_blk_replace(nn, h, cdm_nn_bcast_add(nn, *h, s, &n, err), &n);
done:
	cdm_nn_free(nn, a);
	cdm_nn_free(nn, s);
	return rc;
}

int cdm_blk_resnet_fwd(cdm_nn *nn, const struct cdm_blk_resnet *r, const cdm_tensor *x,
		       const cdm_tensor *temb_act, cdm_tensor **out, struct cdm_err *err)
{
	const struct cdm_blk_resnet_spec *s = &r->s;
	cdm_tensor *h = NULL, *n = NULL, *t = NULL, *xs = NULL, *sc = NULL;
	int g = (int)s->groups, rc;
	int (*resample)(cdm_nn *, const cdm_tensor *, cdm_tensor **, struct cdm_err *) =
		s->resample == CDM_BLK_UP ? cdm_nn_upsample2x
		: s->resample == CDM_BLK_DOWN ? cdm_nn_avgpool2x : NULL;
	if ((rc = cdm_nn_group_norm(nn, x, g, s->eps, r->norm1.w, r->norm1.b, &h, err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &h, cdm_nn_act(nn, h, s->act, &n, err), &n)) < 0)
		goto done;
	/* resample both the shortcut input and the hidden state */
	if (resample && ((rc = resample(nn, x, &xs, err)) < 0 ||
			 (rc = cdm_blk_replace(nn, &h, resample(nn, h, &n, err), &n)) < 0))
		goto done;
	if ((rc = cdm_blk_replace(nn, &h, cdm_blk_conv(nn, h, &r->conv1, 1, 1, 1, &n, err), &n)) < 0)
		goto done;
	if (r->temb.w) {
		if (!temb_act) {
			rc = cdm_fail(err, CDM_EINTERNAL, "resnet: time embedding missing");
			goto done;
		}
		if ((rc = cdm_nn_linear(nn, temb_act, r->temb.w, r->temb.b, &t, err)) < 0)
			goto done;
	}
	if (t && s->scale_shift) {
		if ((rc = scale_shift(nn, r, &h, t, err)) < 0)
			goto done;
	} else if ((t && (rc = cdm_blk_replace(nn, &h, cdm_nn_bcast_add(nn, h, t, &n, err),
					       &n)) < 0) ||
		   (rc = cdm_blk_replace(nn, &h, cdm_nn_group_norm(nn, h, g, s->eps, r->norm2.w,
								   r->norm2.b, &n, err), &n)) < 0) {
		goto done;
	}
	if ((rc = cdm_blk_replace(nn, &h, cdm_nn_act(nn, h, s->act, &n, err), &n)) < 0 ||
	    (rc = cdm_blk_replace(nn, &h, cdm_blk_conv(nn, h, &r->conv2, 1, 1, 1, &n, err), &n)) < 0)
		goto done;
	const cdm_tensor *in = xs ? xs : x;
	if (r->shortcut.w && (rc = cdm_blk_conv(nn, in, &r->shortcut, 1, 0, 0, &sc, err)) < 0)
		goto done;
	rc = cdm_nn_axpby(nn, 1.0 / s->osf, sc ? sc : in, 1.0 / s->osf, h, out, err);
done:
	cdm_nn_free(nn, h);
	cdm_nn_free(nn, n);
	cdm_nn_free(nn, t);
	cdm_nn_free(nn, xs);
	cdm_nn_free(nn, sc);
	return rc;
}

/* ---- spatial self-attention ------------------------------------------------- */

int cdm_blk_attn_bind(struct cdm_blk *b, struct cdm_blk_attn *a, const char *prefix, int64_t c,
		      int64_t head_dim, int64_t groups, double eps, double rescale,
		      struct cdm_err *err)
{
	a->c = c;
	a->dh = head_dim ? head_dim : c;
	a->heads = c / a->dh;
	if (a->heads < 1)
		return cdm_fail(err, CDM_EINPUT,
				"config: attention_head_dim %lld exceeds the %lld channels of %s",
				(long long)a->dh, (long long)c, prefix);
	a->groups = groups;
	a->eps = eps;
	a->rescale = rescale;
	/* diffusers' inner_dim = heads * dim_head, which may be below c */
	int64_t inner = a->heads * a->dh;
	if (groups) {
		CDM_TRY(cdm_blk_check_groups(groups, c, prefix, "group_norm", err));
		CDM_TRY(cdm_blk_bind_wb(b, &a->norm, prefix, "group_norm", c, 0, 0, 0, 1, err));
	}
	CDM_TRY(cdm_blk_bind_proj(b, &a->q, prefix, "to_q", "query", inner, c, 1, err));
	CDM_TRY(cdm_blk_bind_proj(b, &a->k, prefix, "to_k", "key", inner, c, 1, err));
	CDM_TRY(cdm_blk_bind_proj(b, &a->v, prefix, "to_v", "value", inner, c, 1, err));
	return cdm_blk_bind_proj(b, &a->o, prefix, "to_out.0", "proj_attn", c, inner, 1, err);
}

void cdm_blk_attn_free(cdm_nn *nn, struct cdm_blk_attn *a)
{
	cdm_blk_free_wb(nn, &a->norm);
	cdm_blk_free_wb(nn, &a->q);
	cdm_blk_free_wb(nn, &a->k);
	cdm_blk_free_wb(nn, &a->v);
	cdm_blk_free_wb(nn, &a->o);
}

int cdm_blk_attn_fwd(cdm_nn *nn, const struct cdm_blk_attn *a, const cdm_tensor *x,
		     cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *hn = NULL, *tok = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *p = NULL,
		   *img = NULL;
	int rc;
	if (a->groups && (rc = cdm_nn_group_norm(nn, x, (int)a->groups, a->eps, a->norm.w,
						 a->norm.b, &hn, err)) < 0)
		goto done;
	if ((rc = cdm_nn_to_tokens(nn, hn ? hn : x, &tok, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, tok, a->q.w, a->q.b, &q, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, tok, a->k.w, a->k.b, &k, err)) < 0 ||
	    (rc = cdm_nn_linear(nn, tok, a->v.w, a->v.b, &v, err)) < 0 ||
	    (rc = cdm_nn_attention(nn, q, k, v, (int)a->heads, 1.0 / sqrt((double)a->dh), &o,
				   err)) < 0 ||
	    (rc = cdm_nn_linear(nn, o, a->o.w, a->o.b, &p, err)) < 0 ||
	    (rc = cdm_nn_from_tokens(nn, p, x->dim[2], x->dim[3], &img, err)) < 0)
		goto done;
	rc = cdm_nn_axpby(nn, 1.0 / a->rescale, img, 1.0 / a->rescale, x, out, err);
done:
	cdm_nn_free(nn, hn);
	cdm_nn_free(nn, tok);
	cdm_nn_free(nn, q);
	cdm_nn_free(nn, k);
	cdm_nn_free(nn, v);
	cdm_nn_free(nn, o);
	cdm_nn_free(nn, p);
	cdm_nn_free(nn, img);
	return rc;
}

/* ---- samplers ------------------------------------------------------------- */

int cdm_blk_upsample(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *conv,
		     cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *u = NULL;
	CDM_TRY(cdm_nn_upsample2x(nn, x, &u, err));
	int rc = cdm_blk_conv(nn, u, conv, 1, 1, 1, out, err);
	cdm_nn_free(nn, u);
	return rc;
}

int cdm_blk_downsample(cdm_nn *nn, const cdm_tensor *x, const struct cdm_wb *conv,
		       int64_t padding, cdm_tensor **out, struct cdm_err *err)
{
	int p = (int)padding;
	return cdm_blk_conv(nn, x, conv, 2, p, p ? p : 1, out, err);
}

int64_t cdm_blk_down_size(int64_t s, int64_t padding)
{
	int64_t padded = padding ? s + 2 * padding : s + 1;
	return padded < 3 ? 0 : (padded - 3) / 2 + 1;
}

/* ---- time embedding ----------------------------------------------------------- */

int cdm_blk_time_embed(cdm_nn *nn, const struct cdm_wb *lin1, const struct cdm_wb *lin2,
		       const double *t, int64_t batch, int64_t dim, int flip_sin_to_cos,
		       double freq_shift, cdm_tensor **out, struct cdm_err *err)
{
	cdm_tensor *e = NULL, *n = NULL;
	int rc;
	if ((rc = cdm_nn_timestep_embedding(nn, t, batch, dim, flip_sin_to_cos, freq_shift, &e,
					    err)) < 0 ||
	    (rc = cdm_blk_replace(nn, &e, cdm_nn_linear(nn, e, lin1->w, lin1->b, &n, err), &n)) < 0 ||
	    (rc = cdm_blk_replace(nn, &e, cdm_nn_act(nn, e, CDM_ACT_SILU, &n, err), &n)) < 0 ||
	    (rc = cdm_blk_replace(nn, &e, cdm_nn_linear(nn, e, lin2->w, lin2->b, &n, err), &n)) < 0) {
		cdm_nn_free(nn, e);
		return rc;
	}
	*out = e;
	return 0;
}
