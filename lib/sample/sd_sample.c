/* sample/sd_sample: the party side for Stable Diffusion pipelines. */
#include "sample_impl.h"

int cdm_sample_sd_run(cdm_mpc *m, cdm_share *model, cdm_share *input,
		      const struct cdm_sample_opts *o, struct cdm_sample_result *res,
		      struct cdm_err *err)
{
	(void)m, (void)model, (void)input, (void)o, (void)res;
	return cdm_fail(err, CDM_EINPUT, "not yet");
}
