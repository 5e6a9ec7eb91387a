/* fmt/png: 8-bit PNG via libpng, diffusers pixel mapping, grids (png.h). */
#include "png.h"
#include "st.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

/* Encoder state reached from libpng callbacks. Heap-allocated so nothing
 * the longjmp path reads lives in a register-cached local. */
struct png_mem {
	uint8_t *p;
	size_t len, cap;
	char msg[160]; /* libpng's error text */
};

static void on_error(png_structp png, png_const_charp msg)
{
	struct png_mem *m = png_get_error_ptr(png);
	snprintf(m->msg, sizeof m->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg; /* the library never prints */
}

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
	struct png_mem *m = png_get_io_ptr(png);
	if (n > m->cap - m->len) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap - m->len < n) {
			if (cap > SIZE_MAX / 2)
				png_error(png, "output too large");
			cap *= 2;
		}
		uint8_t *q = realloc(m->p, cap);
		if (!q)
			png_error(png, "out of memory");
		m->p = q;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, n);
	m->len += n;
}

static void mem_flush(png_structp png)
{
	(void)png;
}

static int check_dims(uint64_t w, uint64_t h, int channels, const char *what,
		      struct cdm_err *err)
{
	if (channels != 1 && channels != 3)
		return cdm_fail(err, CDM_EINPUT, "%s: %d channels (1 gray or 3 RGB supported)", what,
				channels);
	if (w == 0 || h == 0 || w > CDM_PNG_MAX_DIM || h > CDM_PNG_MAX_DIM ||
	    w * h > CDM_PNG_MAX_PIXELS)
		return cdm_fail(err, CDM_EINPUT, "%s: image %llux%llu outside 1..%u per side, %u pixels",
				what, (unsigned long long)w, (unsigned long long)h, CDM_PNG_MAX_DIM,
				CDM_PNG_MAX_PIXELS);
	return 0;
}

int cdm_png_encode(const uint8_t *pix, uint32_t width, uint32_t height, int channels,
		   uint8_t **out, size_t *len, struct cdm_err *err)
{
	*out = NULL;
	CDM_TRY(check_dims(width, height, channels, "png", err));
	struct png_mem *m = calloc(1, sizeof *m);
	if (!m)
		return cdm_fail(err, CDM_ENOMEM, "png: out of memory");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, m, on_error, on_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		free(m);
		return cdm_fail(err, CDM_ENOMEM, "png: cannot create the encoder");
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		int rc = cdm_fail(err, CDM_EIO, "png: encoding failed: %s", m->msg);
		free(m->p);
		free(m);
		return rc;
	}
	png_set_write_fn(png, m, mem_write, mem_flush);
	png_set_IHDR(png, info, width, height, 8,
		     channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	size_t stride = (size_t)width * (size_t)channels;
	for (uint32_t y = 0; y < height; y++)
		png_write_row(png, pix + y * stride);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	*out = m->p;
	*len = m->len;
	free(m);
	return 0;
}

int cdm_png_write(const char *path, const uint8_t *pix, uint32_t width, uint32_t height,
		  int channels, struct cdm_err *err)
{
	uint8_t *buf;
	size_t len;
	int rc = cdm_png_encode(pix, width, height, channels, &buf, &len, err);
	if (rc < 0)
		return cdm_err_prefix(err, "%s: ", path);
	rc = cdm_write_file_atomic(path, buf, len, 0644, err);
	free(buf);
	return rc;
}

int cdm_png_decode(const void *buf, size_t len, const char *what, uint8_t **pix,
		   uint32_t *width, uint32_t *height, int *channels, struct cdm_err *err)
{
	*pix = NULL;
	png_image img;
	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, buf, len))
		return cdm_fail(err, CDM_EINPUT, "%s: not a readable PNG: %s", what, img.message);
	int ch = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
	int rc = check_dims(img.width, img.height, ch, what, err);
	uint8_t *p = NULL;
	if (rc == 0) {
		p = cdm_alloc((size_t)img.width * img.height, (size_t)ch, err);
		if (!p)
			rc = err ? err->code : CDM_ENOMEM;
	}
	if (rc < 0) {
		png_image_free(&img);
		return rc;
	}
	img.format = ch == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
	if (!png_image_finish_read(&img, NULL, p, 0, NULL)) {
		rc = cdm_fail(err, CDM_EINPUT, "%s: corrupt PNG: %s", what, img.message);
		png_image_free(&img);
		cdm_free(p);
		return rc;
	}
	*pix = p;
	*width = img.width;
	*height = img.height;
	*channels = ch;
	return 0;
}

int cdm_png_read(const char *path, uint8_t **pix, uint32_t *width, uint32_t *height,
		 int *channels, struct cdm_err *err)
{
	uint8_t *buf;
	size_t len;
	*pix = NULL;
	CDM_TRY(cdm_read_file(path, (uint64_t)1 << 30, &buf, &len, err));
	int rc = cdm_png_decode(buf, len, path, pix, width, height, channels, err);
	cdm_free(buf);
	return rc;
}

uint8_t cdm_png_pixel(float x)
{
	float v = x / 2.0f + 0.5f;
	if (!(v > 0.0f)) /* also NaN */
		return 0;
	if (v > 1.0f)
		v = 1.0f;
	return (uint8_t)nearbyintf(v * 255.0f); /* default rounding: half to even */
}

int cdm_png_from_tensor(const float *x, int64_t b, int64_t c, int64_t h, int64_t w,
			uint8_t **pix, uint32_t *width, uint32_t *height, int *channels,
			struct cdm_err *err)
{
	*pix = NULL;
	if (b < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || b > CDM_PNG_MAX_PIXELS ||
	    h > CDM_PNG_MAX_DIM || w > CDM_PNG_MAX_DIM)
		return cdm_fail(err, CDM_EINPUT,
				"image tensor [%lld,%lld,%lld,%lld]: need [B,1|3,H,W] with B,H,W >= 1",
				(long long)b, (long long)c, (long long)h, (long long)w);
	int64_t cols = (int64_t)ceil(sqrt((double)b));
	while (cols * cols < b) /* guard against sqrt rounding */
		cols++;
	int64_t rows = (b + cols - 1) / cols;
	uint64_t gw = (uint64_t)(cols * w + (cols - 1) * CDM_PNG_GAP);
	uint64_t gh = (uint64_t)(rows * h + (rows - 1) * CDM_PNG_GAP);
	CDM_TRY(check_dims(gw, gh, (int)c, "image grid", err));
	uint8_t *p = cdm_alloc(gw * gh, (size_t)c, err);
	if (!p)
		return err ? err->code : CDM_ENOMEM;
	memset(p, CDM_PNG_GAP_VALUE, gw * gh * (size_t)c);
	for (int64_t i = 0; i < b; i++) {
		int64_t x0 = (i % cols) * (w + CDM_PNG_GAP), y0 = (i / cols) * (h + CDM_PNG_GAP);
		const float *img = x + i * c * h * w;
		for (int64_t y = 0; y < h; y++)
			for (int64_t xx = 0; xx < w; xx++)
				for (int64_t k = 0; k < c; k++)
					p[((size_t)(y0 + y) * gw + (size_t)(x0 + xx)) * (size_t)c + (size_t)k] =
						cdm_png_pixel(img[(k * h + y) * w + xx]);
	}
	*pix = p;
	*width = (uint32_t)gw;
	*height = (uint32_t)gh;
	*channels = (int)c;
	return 0;
}

int cdm_png_save_tensor(const char *path, const float *x, int64_t b, int64_t c, int64_t h,
			int64_t w, struct cdm_err *err)
{
	uint8_t *p;
	uint32_t gw, gh;
	int ch;
	int rc = cdm_png_from_tensor(x, b, c, h, w, &p, &gw, &gh, &ch, err);
	if (rc < 0)
		return cdm_err_prefix(err, "%s: ", path);
	rc = cdm_png_write(path, p, gw, gh, ch, err);
	cdm_free(p);
	return rc;
}
