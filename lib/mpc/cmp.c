/* mpc: comparison, select, ReLU, max (work in progress). */
#include "mpc_impl.h"

int cdm_mpc_ltz(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	(void)m; (void)out; (void)x;
	return cdm_fail(err, CDM_EINTERNAL, "mpc ltz: not implemented yet");
}
int cdm_mpc_lt(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, const cdm_shr *y,
	       struct cdm_err *err)
{
	(void)m; (void)out; (void)x; (void)y;
	return cdm_fail(err, CDM_EINTERNAL, "mpc lt: not implemented yet");
}
int cdm_mpc_select(cdm_mpc *m, cdm_shr *out, const cdm_shr *bit, const cdm_shr *x,
		   const cdm_shr *y, struct cdm_err *err)
{
	(void)m; (void)out; (void)x; (void)y; (void)bit;
	return cdm_fail(err, CDM_EINTERNAL, "mpc select: not implemented yet");
}
int cdm_mpc_relu(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, struct cdm_err *err)
{
	(void)m; (void)out; (void)x;
	return cdm_fail(err, CDM_EINTERNAL, "mpc relu: not implemented yet");
}
int cdm_mpc_max_rows(cdm_mpc *m, cdm_shr *out, const cdm_shr *x, size_t rows, size_t cols,
		     struct cdm_err *err)
{
	(void)m; (void)out; (void)x; (void)rows; (void)cols;
	return cdm_fail(err, CDM_EINTERNAL, "mpc max_rows: not implemented yet");
}
