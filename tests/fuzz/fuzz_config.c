/* Fuzz target: the meaning of config files, on top of the JSON layer that
 * fuzz_json covers -- UNet2DModel config.json (what cdm-share, cdm-party and
 * cdm-unet-step read), scheduler_config.json for each sampler, and the
 * Stable Diffusion component configs (UNet2DConditionModel, AutoencoderKL,
 * CLIPTextModel). Each parser either accepts or fails with CDM_EINPUT and a
 * message; an accepted UNet config serialises to JSON that parses back to
 * the same serialisation. */
#include "../../lib/model/config.h"
#include "../../lib/model/sd_config.h"
#include "../../lib/sched/sched.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a failure must say why and must be an input error */
static void explained(int rc, const struct cdm_err *err)
{
	if (rc < 0 && (err->msg[0] == '\0' || (rc != CDM_EINPUT && rc != CDM_ENOMEM)))
		abort();
}

static void unet_roundtrip(const struct cdm_unet_config *cfg)
{
	struct cdm_err err = {0};
	struct cdm_unet_config again;
	char *a = NULL, *b = NULL;
	if (cdm_unet_config_to_json(cfg, &a, &err) < 0)
		return;
	if (cdm_unet_config_parse(&again, a, strlen(a), "again", &err) < 0 ||
	    cdm_unet_config_to_json(&again, &b, &err) < 0 || strcmp(a, b) != 0)
		abort(); /* what we accepted and wrote out, we must read back alike */
	cdm_free(a);
	cdm_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct cdm_err err = {0};
	struct cdm_unet_config u;
	int rc = cdm_unet_config_parse(&u, text, size, "config.json", &err);
	explained(rc, &err);
	if (rc == 0)
		unet_roundtrip(&u);
	for (int k = CDM_SAMPLER_DDPM; k <= CDM_SAMPLER_DPMPP; k++) {
		struct cdm_sched_config sc;
		memset(&err, 0, sizeof err);
		rc = cdm_sched_config_parse(&sc, (enum cdm_sampler_kind)k, text, size,
					    "scheduler_config.json", &err);
		explained(rc, &err);
		if (rc == 0)
			cdm_sched_config_clear(&sc);
	}
	struct cdm_unet_cond_config uc;
	struct cdm_vae_config vc;
	struct cdm_clip_config cc;
	memset(&err, 0, sizeof err);
	explained(cdm_unet_cond_config_parse(&uc, text, size, "unet/config.json", &err), &err);
	memset(&err, 0, sizeof err);
	explained(cdm_vae_config_parse(&vc, text, size, "vae/config.json", &err), &err);
	memset(&err, 0, sizeof err);
	explained(cdm_clip_config_parse(&cc, text, size, "text_encoder/config.json", &err), &err);
	return 0;
}
