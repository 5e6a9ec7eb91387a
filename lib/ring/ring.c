/* ring: Z_2^64 vectors and fixed-point encoding (see ring.h). */
#include "ring.h"

#include <math.h>
#include <string.h>

double cdm_fxp_max(int frac_bits)
{
	return ldexp(1.0, 62 - frac_bits) - ldexp(1.0, -frac_bits);
}

uint64_t cdm_fxp_from_double(double v, int frac_bits)
{
	if (isnan(v))
		return 0;
	double lim = ldexp(1.0, 62) - 1024.0; /* largest double below 2^62 */
	double s = nearbyint(ldexp(v, frac_bits));
	if (s > lim)
		s = lim;
	if (s < -lim)
		s = -lim;
	return (uint64_t)(int64_t)s;
}

double cdm_fxp_to_double(uint64_t x, int frac_bits)
{
	return ldexp((double)(int64_t)x, -frac_bits);
}

static int encode_one(uint64_t *out, double v, size_t i, int frac_bits, const char *what,
		      size_t *saturated, struct cdm_err *err)
{
	if (!isfinite(v))
		return cdm_fail(err, CDM_EINPUT, "%s: element %zu is %s; fixed point cannot hold it",
				what ? what : "tensor", i, isnan(v) ? "NaN" : "infinite");
	if (saturated && fabs(v) > cdm_fxp_max(frac_bits))
		++*saturated;
	*out = cdm_fxp_from_double(v, frac_bits);
	return 0;
}

int cdm_fxp_encode_f32(uint64_t *out, const float *in, size_t n, int frac_bits,
		       const char *what, size_t *saturated, struct cdm_err *err)
{
	for (size_t i = 0; i < n; i++)
		CDM_TRY(encode_one(&out[i], in[i], i, frac_bits, what, saturated, err));
	return 0;
}

int cdm_fxp_encode_f64(uint64_t *out, const double *in, size_t n, int frac_bits,
		       const char *what, size_t *saturated, struct cdm_err *err)
{
	for (size_t i = 0; i < n; i++)
		CDM_TRY(encode_one(&out[i], in[i], i, frac_bits, what, saturated, err));
	return 0;
}

void cdm_fxp_decode_f32(float *out, const uint64_t *in, size_t n, int frac_bits)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (float)cdm_fxp_to_double(in[i], frac_bits);
}

void cdm_fxp_decode_f64(double *out, const uint64_t *in, size_t n, int frac_bits)
{
	for (size_t i = 0; i < n; i++)
		out[i] = cdm_fxp_to_double(in[i], frac_bits);
}

void cdm_ring_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void cdm_ring_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] - b[i];
}

void cdm_ring_neg(uint64_t *out, const uint64_t *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint64_t)0 - a[i];
}

void cdm_ring_mul_scalar(uint64_t *out, const uint64_t *a, uint64_t s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] * s;
}

void cdm_ring_sar(uint64_t *out, const uint64_t *a, int shift, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint64_t)((int64_t)a[i] >> shift);
}
