/* prg: AES-128-CTR keystreams (see prg.h). */
#include "prg.h"

#include <math.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

int cdm_prg_init(cdm_prg *g, const uint8_t seed[CDM_SEED_BYTES], struct cdm_err *err)
{
	static const uint8_t zero_iv[16];
	memset(g, 0, sizeof *g);
	memcpy(g->seed, seed, CDM_SEED_BYTES);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, seed, zero_iv) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return cdm_fail(err, CDM_EINTERNAL, "prg: cannot set up AES-128-CTR");
	}
	g->ctx = ctx;
	return 0;
}

void cdm_prg_free(cdm_prg *g)
{
	if (g && g->ctx) {
		EVP_CIPHER_CTX_free(g->ctx);
		g->ctx = NULL;
	}
}

void cdm_prg_bytes(cdm_prg *g, void *buf, size_t n)
{
	/* CTR keystream = encryption of zeros; encrypt in place in chunks
	 * that fit an int, then discard the tail of a partial block so the
	 * next call starts on a block boundary. */
	unsigned char *p = buf;
	size_t full = n & ~(size_t)15;
	memset(p, 0, full);
	size_t done = 0;
	while (done < full) {
		size_t chunk = full - done > (1u << 30) ? (1u << 30) : full - done;
		int outl = 0;
		EVP_EncryptUpdate(g->ctx, p + done, &outl, p + done, (int)chunk);
		done += chunk;
	}
	if (n > full) {
		unsigned char tail[16] = {0};
		int outl = 0;
		EVP_EncryptUpdate(g->ctx, tail, &outl, tail, 16);
		memcpy(p + full, tail, n - full);
	}
	g->blocks += (n + 15) / 16;
}

void cdm_prg_u64(cdm_prg *g, uint64_t *out, size_t n)
{
	cdm_prg_bytes(g, out, n * sizeof *out);
}

void cdm_prg_derive(const uint8_t seed[CDM_SEED_BYTES], const char *label, uint64_t index,
		    uint8_t out[CDM_SEED_BYTES])
{
	/* One AES block: E_seed(H(label) xor index). Distinct (label, index)
	 * give independent keys for the sub-stream. */
	uint8_t block[16] = {0};
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of the label */
	for (const char *c = label; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ULL;
	memcpy(block, &h, 8);
	memcpy(block + 8, &index, 8);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl = 0;
	EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, seed, NULL);
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	EVP_EncryptUpdate(ctx, out, &outl, block, 16);
	EVP_CIPHER_CTX_free(ctx);
}

void cdm_prg_gauss(cdm_prg *g, double *out, size_t n)
{
	uint64_t u[2];
	for (size_t i = 0; i < n; i += 2) {
		cdm_prg_u64(g, u, 2);
		/* (0,1] and [0,1) uniforms from the top 53 bits. */
		double u1 = ((u[0] >> 11) + 1.0) * 0x1.0p-53;
		double u2 = (u[1] >> 11) * 0x1.0p-53;
		double r = sqrt(-2.0 * log(u1));
		out[i] = r * cos(2 * M_PI * u2);
		if (i + 1 < n)
			out[i + 1] = r * sin(2 * M_PI * u2);
	}
}

int cdm_seed_random(uint8_t out[CDM_SEED_BYTES], struct cdm_err *err)
{
	size_t got = 0;
	while (got < CDM_SEED_BYTES) {
		ssize_t r = getrandom(out + got, CDM_SEED_BYTES - got, 0);
		if (r < 0)
			return cdm_fail(err, CDM_EINTERNAL, "getrandom failed");
		got += (size_t)r;
	}
	return 0;
}
