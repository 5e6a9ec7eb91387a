/*
 * sample/ckpt: this party's checkpoint files (internal to lib/sample; the
 * public switches are in struct cdm_sample_opts).
 *
 * Owns: the checkpoint layout. DIR/party<I>-step<NNNNNN>.ckpt is a share
 * file (lib/fmt/share.h) of kind "checkpoint" holding, after NNNNNN
 * completed steps,
 *   tensor "x"        [B,C,H,W]  the current sample (this party's pair)
 *   tensor "x0_prev"  [B,C,H,W]  DPM++ history, when there is one
 *   meta "step"       completed steps
 *   meta "run"        the run's parameters (sharings, sampler, steps, eta,
 *                     protocols, fraction bits): a checkpoint of another run
 *                     is never resumed
 *   meta "party_seed" this party's private seed (32 hex digits) from which
 *                     every per-step random stream derives
 * and a sharing id common to the three parties' files of that step. Files
 * are 0600 and appear atomically (temporary file, then rename).
 * Does not own: deciding when to write or which step to resume (sample.c).
 *
 * Thread-safety: plain functions, no state.
 */
#ifndef CDM_SAMPLE_CKPT_H
#define CDM_SAMPLE_CKPT_H

#include <stdint.h>

#include "../base/base.h"
#include "../fmt/share.h"
#include "../mpc/mpc.h"
#include "../prg/prg.h"

#define CKPT_KEEP 2 /* checkpoints kept per party */

struct ckpt_state {
	int64_t step;                          /* completed steps */
	char id[CDM_SHARE_ID_LEN + 1];         /* sharing id of the step's files */
	uint8_t seed[CDM_SEED_BYTES];          /* party seed */
	cdm_shr x, x0_prev;                    /* x0_prev zeroed when absent */
};

/* The newest CKPT_KEEP checkpoints of `party` in dir whose "run" equals
 * `run` (files of other runs are skipped): steps[] newest first, ids[]
 * their sharing ids; *n how many. A file under the checkpoint name that is
 * not a valid checkpoint of this party is an error naming it. */
int ckpt_scan(const char *dir, int party, const char *run, int64_t steps[CKPT_KEEP],
	      char ids[CKPT_KEEP][CDM_SHARE_ID_LEN + 1], int *n, struct cdm_err *err);

/* Write st as party's checkpoint (frac fraction bits, sample shape). */
int ckpt_write(const char *dir, int party, int frac, const char *run, const int64_t shape[4],
	       const struct ckpt_state *st, struct cdm_err *err);

/* Load step `step` of party into st (x, x0_prev allocated). */
int ckpt_load(const char *dir, int party, int frac, const char *run, int64_t step,
	      const int64_t shape[4], struct ckpt_state *st, struct cdm_err *err);
void ckpt_state_clear(struct ckpt_state *st);

/* Remove party's checkpoints of `run` (files of other runs, and files that
 * are not valid checkpoints, stay). Returns how many were removed, or a
 * negative code naming the file that could not be removed. */
int ckpt_remove_run(const char *dir, int party, const char *run, struct cdm_err *err);

/* Remove party's checkpoints of `run` other than steps keep0 and keep1
 * (-1: none); failures are ignored (an old file only ranks lower). */
void ckpt_prune(const char *dir, int party, const char *run, int64_t keep0, int64_t keep1);

#endif
