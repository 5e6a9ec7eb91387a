/* PNG: pixel mapping against the diffusers formula, grid layout, encode /
 * decode round trip, refusals. */
#include "../../lib/fmt/png.h"
#include "check.h"

#include <string.h>
#include <unistd.h>

static void test_pixel(uint64_t *rng)
{
	CHECK(cdm_png_pixel(-1.0f) == 0 && cdm_png_pixel(1.0f) == 255 && cdm_png_pixel(0.0f) == 128,
	      "ends and middle (0.5*255 = 127.5 rounds to even 128)");
	CHECK(cdm_png_pixel(-7.0f) == 0 && cdm_png_pixel(3.0f) == 255, "clamped");
	CHECK(cdm_png_pixel(NAN) == 0 && cdm_png_pixel(INFINITY) == 255 &&
	      cdm_png_pixel(-INFINITY) == 0, "nan and inf");
	/* v*255 = 2.5 -> 2 (half to even), 3.5 -> 4 */
	CHECK(cdm_png_pixel(2.5f / 255 * 2 - 1) == 2 || cdm_png_pixel(2.5f / 255 * 2 - 1) == 3,
	      "near 2.5");
	int bad = 0;
	for (int i = 0; i < 100000; i++) {
		float x = (float)check_uniform(rng, -1.2, 1.2);
		float v = x / 2.0f + 0.5f;
		v = v < 0 ? 0 : v > 1 ? 1 : v;
		double ref = nearbyint((double)(v * 255.0f));
		bad += cdm_png_pixel(x) != (uint8_t)ref;
	}
	CHECK(bad == 0, "%d pixels differ from the float32 formula", bad);
}

static void test_grid_roundtrip(void)
{
	/* B=5, C=3, H=2, W=3: 3 columns, 2 rows */
	enum { B = 5, C = 3, H = 2, W = 3 };
	float x[B * C * H * W];
	for (int i = 0; i < B * C * H * W; i++)
		x[i] = (float)((i * 37) % 255) / 127.0f - 1.0f;
	uint8_t *p;
	uint32_t gw, gh;
	int ch;
	struct cdm_err err = {0};
	CHECK(cdm_png_from_tensor(x, B, C, H, W, &p, &gw, &gh, &ch, &err) == 0, "grid: %s", err.msg);
	CHECK(gw == 3 * W + 2 * CDM_PNG_GAP && gh == 2 * H + CDM_PNG_GAP && ch == 3, "grid %ux%u",
	      gw, gh);
	int bad = 0;
	for (int b = 0; b < B; b++)
		for (int y = 0; y < H; y++)
			for (int xx = 0; xx < W; xx++)
				for (int k = 0; k < C; k++) {
					int gx = (b % 3) * (W + 2) + xx, gy = (b / 3) * (H + 2) + y;
					bad += p[(gy * gw + gx) * 3 + k] !=
					       cdm_png_pixel(x[((b * C + k) * H + y) * W + xx]);
				}
	CHECK(bad == 0, "%d grid pixels misplaced", bad);
	CHECK(p[(0 * gw + W) * 3] == CDM_PNG_GAP_VALUE && p[(H * gw) * 3] == CDM_PNG_GAP_VALUE &&
	      p[((gh - 1) * gw + gw - 1) * 3] == CDM_PNG_GAP_VALUE, "gaps and the empty 6th cell");

	char path[] = "/tmp/cdm-test-png.XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	CHECK(cdm_png_write(path, p, gw, gh, ch, &err) == 0, "write: %s", err.msg);
	uint8_t *q;
	uint32_t rw, rh;
	int rc_ch;
	CHECK(cdm_png_read(path, &q, &rw, &rh, &rc_ch, &err) == 0, "read: %s", err.msg);
	CHECK(q && rw == gw && rh == gh && rc_ch == 3 && memcmp(p, q, (size_t)gw * gh * 3) == 0,
	      "RGB round trip");
	cdm_free(q);
	/* gray, single image */
	uint8_t g[4 * 5];
	for (int i = 0; i < 20; i++)
		g[i] = (uint8_t)(i * 13);
	CHECK(cdm_png_write(path, g, 4, 5, 1, &err) == 0, "gray write");
	CHECK(cdm_png_read(path, &q, &rw, &rh, &rc_ch, &err) == 0 && rw == 4 && rh == 5 &&
	      rc_ch == 1 && memcmp(q, g, 20) == 0, "gray round trip");
	cdm_free(q);
	CHECK(cdm_png_save_tensor(path, x, 1, 1, 2, 3, &err) == 0 &&
	      cdm_png_read(path, &q, &rw, &rh, &rc_ch, &err) == 0 && rw == 3 && rh == 2 &&
	      rc_ch == 1 && q[4] == cdm_png_pixel(x[4]), "B=1 has no gap");
	cdm_free(q);
	/* refusals */
	CHECK(cdm_png_write(path, g, 4, 5, 2, &err) == CDM_EINPUT && strstr(err.msg, "2 channels"),
	      "2 channels: %s", err.msg);
	CHECK(cdm_png_from_tensor(x, 2, 4, 2, 3, &q, &rw, &rh, &rc_ch, &err) == CDM_EINPUT,
	      "C=4 refused");
	CHECK(cdm_png_decode("notapng", 7, "junk.png", &q, &rw, &rh, &rc_ch, &err) == CDM_EINPUT &&
	      strstr(err.msg, "junk.png: not a readable PNG"), "junk: %s", err.msg);
	uint8_t *enc;
	size_t len;
	CHECK(cdm_png_encode(g, 4, 5, 1, &enc, &len, &err) == 0, "encode");
	/* every prefix that cuts into the pixel data fails (libpng stops
	 * reading after the last IDAT, so only the 12-byte IEND may be lost) */
	int trunc_ok = 0;
	for (size_t k = 0; k + 12 < len; k++) {
		q = NULL;
		if (cdm_png_decode(enc, k, "t.png", &q, &rw, &rh, &rc_ch, &err) == 0)
			trunc_ok++;
		cdm_free(q);
	}
	CHECK(trunc_ok == 0, "%d truncated PNGs decoded", trunc_ok);
	cdm_free(enc);
	CHECK(cdm_png_write("/nonexistent-dir/x.png", g, 4, 5, 1, &err) == CDM_EIO,
	      "unwritable path: %s", err.msg);
	unlink(path);
	cdm_free(p);
}

int main(void)
{
	uint64_t rng = check_seed();
	test_pixel(&rng);
	test_grid_roundtrip();
	return check_done();
}
