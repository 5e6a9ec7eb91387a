/* Ring and fixed-point encoding; PRG determinism. */
#include "../../lib/prg/prg.h"
#include "../../lib/ring/ring.h"
#include "check.h"

#include <string.h>

static void test_encode(void)
{
	struct cdm_err err = {0};
	float in[6] = {0.0f, 1.5f, -2.25f, 1e30f, -1e30f, 3.0517578125e-5f};
	uint64_t out[6];
	size_t sat = 0;
	CHECK(cdm_fxp_encode_f32(out, in, 6, 16, "t", &sat, &err) == 0, "encode: %s", err.msg);
	CHECK(out[1] == (uint64_t)(1.5 * 65536), "1.5 encodes");
	CHECK((int64_t)out[2] == -(int64_t)(2.25 * 65536), "-2.25 encodes");
	CHECK(sat == 2, "two values saturate, got %zu", sat);
	CHECK((int64_t)out[3] > 0 && (int64_t)out[4] < 0, "saturation keeps the sign");
	CHECK(out[5] == 2, "2 LSB");
	CHECK_NEAR(cdm_fxp_to_double(out[2], 16), -2.25, 0, "decode");
	float bad[2] = {1.0f, NAN};
	CHECK(cdm_fxp_encode_f32(out, bad, 2, 16, "w", NULL, &err) == CDM_EINPUT, "NaN refused");
	CHECK(strstr(err.msg, "element 1") != NULL, "message names element: %s", err.msg);
	float inf[1] = {INFINITY};
	CHECK(cdm_fxp_encode_f32(out, inf, 1, 16, "w", NULL, &err) == CDM_EINPUT, "Inf refused");
}

static void test_gemm(uint64_t *st)
{
	enum { M = 7, K = 300, N = 9 };
	static uint64_t a[M * K], b[K * N], c[M * N];
	for (int i = 0; i < M * K; i++) a[i] = check_rand(st);
	for (int i = 0; i < K * N; i++) b[i] = check_rand(st);
	cdm_ring_gemm(c, a, b, M, K, N, 0);
	int bad = 0;
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			uint64_t s = 0;
			for (int p = 0; p < K; p++) s += a[i * K + p] * b[p * N + j];
			bad += s != c[i * N + j];
		}
	CHECK(bad == 0, "ring gemm matches the naive product (%d wrong)", bad);
}

static void test_prg(void)
{
	struct cdm_err err = {0};
	uint8_t seed[16] = {1, 2, 3};
	cdm_prg g1, g2;
	CHECK(cdm_prg_init(&g1, seed, &err) == 0, "prg init");
	CHECK(cdm_prg_init(&g2, seed, &err) == 0, "prg init");
	uint64_t x[5], y[5];
	cdm_prg_u64(&g1, x, 3); cdm_prg_u64(&g1, x + 3, 2);
	cdm_prg_u64(&g2, y, 3); cdm_prg_u64(&g2, y + 3, 2);
	CHECK(memcmp(x, y, sizeof x) == 0, "same seed, same calls, same stream");
	CHECK(x[0] != x[1], "stream is not constant");
	double gs[10000], mean = 0, var = 0;
	cdm_prg_gauss(&g1, gs, 10000);
	for (int i = 0; i < 10000; i++) mean += gs[i] / 10000;
	for (int i = 0; i < 10000; i++) var += (gs[i] - mean) * (gs[i] - mean) / 10000;
	CHECK(fabs(mean) < 0.05 && fabs(var - 1) < 0.05, "gaussian mean %g var %g", mean, var);
	cdm_prg_free(&g1); cdm_prg_free(&g2);
}

/* AES-128-CTR known answer: key 00 01 .. 0f, counter from 0; the values
 * are `openssl enc -aes-128-ctr` of 40000 zero bytes (the first block is
 * FIPS-197's AES-128 of the zero block under that key). 40000 bytes span
 * several of keystream()'s 16 KiB chunks; the split draw checks that a
 * call of 7 bytes consumes one whole block (prg.h) and that chunk edges
 * inside a call do not show. */
static void test_prg_known_answer(void)
{
	static const char first[] = "c6a13b37878f5b826f4f8162a1c8d8797346139595c0b41e497bbde365f42d0a";
	static const char last[] = "9235892496971a6e98d9243b4f4df1a55aea6489085d0b5a6ea13fa1d0457e68";
	enum { N = 40000 };
	static unsigned char a[N], b[N];
	uint8_t key[16];
	struct cdm_err err = {0};
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	cdm_prg g, h;
	CHECK(cdm_prg_init(&g, key, &err) == 0 && cdm_prg_init(&h, key, &err) == 0, "prg init");
	cdm_prg_bytes(&g, a, N);
	cdm_prg_bytes(&h, b, 7);
	cdm_prg_bytes(&h, b + 16, 16400);
	cdm_prg_bytes(&h, b + 16416, N - 16416);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	CHECK(strcmp(hex, first) == 0, "AES-128-CTR keystream starts %s, expected %s", hex, first);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[N - 32 + i]);
	CHECK(strcmp(hex, last) == 0, "AES-128-CTR keystream ends %s, expected %s", hex, last);
	CHECK(memcmp(a, b, 7) == 0 && memcmp(a + 16, b + 16, N - 16) == 0,
	      "a stream drawn in pieces differs from one draw");
	cdm_prg_free(&g);
	cdm_prg_free(&h);
}

int main(void)
{
	uint64_t st = check_seed();
	test_encode();
	test_gemm(&st);
	test_prg();
	test_prg_known_answer();
	return check_done();
}
