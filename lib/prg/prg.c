/* prg: AES-128-CTR keystreams (see prg.h). */
#include "prg.h"

#include "../ring/pool.h"

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

/* The keystream of n bytes into p: CTR encryption of zeros, read from a
 * small static block that stays in cache (zeroing p first would be one
 * more pass over it: 3% of a party's time). */
static void keystream(EVP_CIPHER_CTX *ctx, unsigned char *p, size_t n)
{
	static const unsigned char zeros[16384];
	size_t done = 0;
	while (done < n) {
		size_t chunk = n - done > sizeof zeros ? sizeof zeros : n - done;
		int outl = 0;
		EVP_EncryptUpdate(ctx, p + done, &outl, zeros, (int)chunk);
		done += chunk;
	}
}

/* The CTR initial counter block for block index b: a 128-bit big-endian
 * counter (the stream starts at 0). */
static void counter_iv(uint64_t b, unsigned char iv[16])
{
	memset(iv, 0, 16);
	for (int i = 0; i < 8; i++)
		iv[15 - i] = (unsigned char)(b >> (8 * i));
}

/* Move g's context to block b of its stream (drops any partial block). */
static void prg_seek(cdm_prg *g, uint64_t b)
{
	unsigned char iv[16];
	counter_iv(b, iv);
	EVP_EncryptInit_ex(g->ctx, NULL, NULL, NULL, iv);
	g->blocks = b;
}

int cdm_prg_open_at(cdm_prg *out, const cdm_prg *g, uint64_t ahead, struct cdm_err *err)
{
	CDM_TRY(cdm_prg_init(out, g->seed, err));
	prg_seek(out, g->blocks + ahead);
	return 0;
}

void cdm_prg_skip(cdm_prg *g, uint64_t blocks)
{
	prg_seek(g, g->blocks + blocks);
}

struct prg_job {
	EVP_CIPHER_CTX *ctx[CDM_THREADS_MAX]; /* one per part, keyed by the caller */
	uint64_t block0;  /* stream position of buf[0] */
	unsigned char *buf;
	size_t n;         /* bytes to fill */
};

/* One part: its own AES context positioned at its first block, so parts
 * are independent and the bytes equal those of one sequential call. */
static void prg_part(void *arg, int part, int nparts)
{
	struct prg_job *j = arg;
	size_t lo, hi;
	cdm_ring_part(j->n, 16, part, nparts, &lo, &hi);
	if (hi == lo)
		return;
	unsigned char iv[16];
	counter_iv(j->block0 + lo / 16, iv);
	EVP_EncryptInit_ex(j->ctx[part], NULL, NULL, NULL, iv);
	keystream(j->ctx[part], j->buf + lo, hi - lo);
}

/* Split n bytes of g's stream over the pool. Returns 0 when it could not
 * set up the contexts (the caller then runs sequentially). */
static int prg_parallel(cdm_prg *g, unsigned char *p, size_t n)
{
	struct prg_job j = {.block0 = g->blocks, .buf = p, .n = n};
	int nt = cdm_ring_threads(), ok = 1;
	for (int i = 0; i < nt; i++) {
		j.ctx[i] = EVP_CIPHER_CTX_new();
		if (!j.ctx[i] ||
		    EVP_EncryptInit_ex(j.ctx[i], EVP_aes_128_ctr(), NULL, g->seed, NULL) != 1)
			ok = 0;
	}
	if (ok)
		cdm_ring_parallel(prg_part, &j);
	for (int i = 0; i < nt; i++)
		EVP_CIPHER_CTX_free(j.ctx[i]);
	return ok;
}

/* Keystreams at least this long are split over the --threads pool; AES-NI
 * makes 256 KiB in about 50 us, a few pool wake-ups. */
#define PRG_PAR_MIN ((size_t)256 << 10)

void cdm_prg_bytes(cdm_prg *g, void *buf, size_t n)
{
	/* CTR keystream = encryption of zeros. The tail of a partial block
	 * is discarded so the next call starts on a block boundary. */
	unsigned char *p = buf;
	uint64_t nblocks = (n + 15) / 16;
	if (n >= PRG_PAR_MIN && cdm_ring_threads() > 1 && prg_parallel(g, p, n)) {
		prg_seek(g, g->blocks + nblocks);
		return;
	}
	size_t full = n & ~(size_t)15;
	keystream(g->ctx, p, full);
	if (n > full) {
		unsigned char tail[16];
		keystream(g->ctx, tail, 16);
		memcpy(p + full, tail, n - full);
	}
	g->blocks += nblocks;
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
