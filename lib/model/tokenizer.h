/*
 * model/tokenizer: the CLIP BPE tokenizer of Stable Diffusion
 * (transformers CLIPTokenizer / openai simple_tokenizer) from vocab.json and
 * merges.txt.
 *
 * Owns: the vocabulary and merge ranks (hash tables), the byte-to-unicode
 * table of byte-level BPE, and encoding a prompt into a fixed number of ids.
 * Does not own: the text encoder (clip.h).
 *
 * Encoding: whitespace runs collapse to one space, ASCII letters are
 * lowercased; the pre-tokenizer splits like CLIP's regex
 *   <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | letters+ |
 *   one digit | other non-space characters+
 * where every byte >= 0x80 counts as a letter (exact for ASCII text; other
 * scripts are approximated: no Unicode case folding, no ftfy repair). Each
 * piece is byte-encoded, gets </w> on its last symbol, and is merged by
 * lowest merge rank (the first 48894 merges after the header line, as
 * CLIPTokenizer). Unknown pieces map to <|endoftext|>. Output:
 * BOS + at most length-2 tokens + EOS, then padding to `length` (the
 * pad_token of tokenizer_config.json / special_tokens_map.json, else EOS).
 * BOS/EOS are the vocabulary's <|startoftext|> / <|endoftext|> ids (49406 /
 * 49407 in SD's vocabulary); length is model_max_length (default 77).
 * Thread-safety: a loaded tokenizer is read-only; encode is reentrant.
 */
#ifndef CDM_MODEL_TOKENIZER_H
#define CDM_MODEL_TOKENIZER_H

#include <stdint.h>

#include "../base/base.h"

typedef struct cdm_tokenizer cdm_tokenizer;

/* dir: a tokenizer folder or an SD pipeline folder with tokenizer/. */
int cdm_tokenizer_load(cdm_tokenizer **out, const char *dir, struct cdm_err *err);
void cdm_tokenizer_free(cdm_tokenizer *t);

int64_t cdm_tokenizer_length(const cdm_tokenizer *t);     /* ids per prompt (77) */
int64_t cdm_tokenizer_vocab_size(const cdm_tokenizer *t); /* entries of vocab.json */
int64_t cdm_tokenizer_bos(const cdm_tokenizer *t);
int64_t cdm_tokenizer_eos(const cdm_tokenizer *t);

/* Encode a NUL-terminated prompt into exactly `len` ids (len must equal
 * cdm_tokenizer_length). */
int cdm_tokenizer_encode(const cdm_tokenizer *t, const char *text, int64_t *ids, int64_t len,
			 struct cdm_err *err);

#endif
