/*
 * fmt/png: 8-bit gray and RGB PNG images (libpng), and turning a float
 * image batch into pixels the way diffusers does.
 *
 * Owns: encoding/decoding 8-bit PNG, the [-1,1] -> 0..255 mapping and the
 * grid layout of a batch. Does not own: anything secret -- callers reveal
 * first.
 *
 * Pixel mapping (diffusers pipelines, in float32): v = clamp(x/2 + 0.5,
 * 0, 1); pixel = round-half-even(v * 255). NaN maps to 0.
 * Grid: a batch of B images [C,H,W] (C = 1 gray, C = 3 RGB) is laid out
 * row by row in ceil(sqrt(B)) columns with a CDM_PNG_GAP-pixel gap of value
 * CDM_PNG_GAP_VALUE between cells (none around the border). B = 1 gives the
 * image itself.
 *
 * Pixels are row-major, channels interleaved (RGBRGB...). Files are written
 * atomically (temporary + rename) with mode 0644; "-" = stdout. libpng
 * errors become CDM_EIO / CDM_EINPUT messages naming the file. Images are
 * limited to CDM_PNG_MAX_DIM per side and CDM_PNG_MAX_PIXELS in total.
 * Thread-safety: none needed; no globals.
 */
#ifndef CDM_FMT_PNG_H
#define CDM_FMT_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_PNG_GAP 2
#define CDM_PNG_GAP_VALUE 255
#define CDM_PNG_MAX_DIM 65536u
#define CDM_PNG_MAX_PIXELS (1u << 28)

/* Encode to a new buffer (release with cdm_free). channels is 1 or 3. */
int cdm_png_encode(const uint8_t *pix, uint32_t width, uint32_t height, int channels,
		   uint8_t **out, size_t *len, struct cdm_err *err);
/* Encode and write atomically. */
int cdm_png_write(const char *path, const uint8_t *pix, uint32_t width, uint32_t height,
		  int channels, struct cdm_err *err);

/* Decode an 8-bit PNG: gray stays 1 channel, color becomes RGB (alpha is
 * composited on black). *pix is cdm_alloc'ed. */
int cdm_png_decode(const void *buf, size_t len, const char *what, uint8_t **pix,
		   uint32_t *width, uint32_t *height, int *channels, struct cdm_err *err);
int cdm_png_read(const char *path, uint8_t **pix, uint32_t *width, uint32_t *height,
		 int *channels, struct cdm_err *err);

/* One model-space value to a pixel, as above. */
uint8_t cdm_png_pixel(float x);
/* x is [B,C,H,W] float32 in model space; builds the grid image. */
int cdm_png_from_tensor(const float *x, int64_t b, int64_t c, int64_t h, int64_t w,
			uint8_t **pix, uint32_t *width, uint32_t *height, int *channels,
			struct cdm_err *err);
/* from_tensor + write. */
int cdm_png_save_tensor(const char *path, const float *x, int64_t b, int64_t c, int64_t h,
			int64_t w, struct cdm_err *err);

#endif
