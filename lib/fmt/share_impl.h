/*
 * fmt/share_impl: what share.c and share_seed.c share (not for other
 * modules). Owns nothing beyond these declarations.
 */
#ifndef CDM_FMT_SHARE_IMPL_H
#define CDM_FMT_SHARE_IMPL_H

#include "share.h"

/* Format and seeds of the header (sh->version, seeded, seed). */
int cdm_share_seed_header(cdm_share *sh, const char *format, struct cdm_err *err);
/* After the stored tensors are checked: the 'secrets' index of a seeded
 * file (sh->virt), checked against them; with both components seeded it
 * becomes the list of secrets. */
int cdm_share_seed_index(cdm_share *sh, struct cdm_err *err);
/* The indexed shape of secret `name` (seeded files), or NULL. */
const struct cdm_st_tensor *cdm_share_seed_find(const cdm_share *sh, const char *name);
/* Seeded component c (0: a, 1: b) of `name`, expanded into sh->owned. */
int cdm_share_seed_comp(cdm_share *sh, const char *name, int c, int ndim, const int64_t *shape,
			const uint64_t **out, struct cdm_err *err);
void cdm_share_seed_clear(cdm_share *sh);

#endif
