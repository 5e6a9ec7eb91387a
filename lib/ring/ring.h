/*
 * ring: the ring Z_2^64 and the fixed-point encoding of reals in it.
 *
 * Owns: encoding float/double -> uint64 with F fraction bits (two's
 * complement), decoding back, and the range policy. No I/O, no randomness.
 *
 * Range policy. A value v is stored as round(v * 2^F) mod 2^64. Encoding
 * rejects NaN and Inf (CDM_EINPUT) and saturates |v| to CDM_FXP_MAX(F)
 * instead of wrapping. Truncation (lib/mpc) is exact to 1 LSB for any
 * product |x| < 2^62 (that is, |v| < 2^(62-2F) before the shift), and
 * comparisons are exact for |v| < 2^(CDM_CMP_BITS-1-F).
 *
 * Default F = 20: resolution 9.5e-7 (exp and softmax reach 1e-3 relative
 * accuracy down to 1e-3), products up to |v| < 2^22 = 4.2e6 before
 * truncation (ring sums may overflow on the way: only the final value
 * counts), comparisons on |v| < 2^(36-1-20) = 32768. The secure UNet's
 * activations stay far below these limits; squares for GroupNorm variance
 * are truncated before they are summed.
 */
#ifndef CDM_RING_H
#define CDM_RING_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CDM_FRAC_BITS_DEFAULT 20
#define CDM_FRAC_BITS_MIN 8
#define CDM_FRAC_BITS_MAX 24
#define CDM_CMP_BITS 36 /* comparisons work on values of this many bits */

/* Saturation bound of the encoding, in real units: 2^(62-F) - 1 LSB. */
double cdm_fxp_max(int frac_bits);

/* Encode n floats. Fails with CDM_EINPUT naming `what` and the index of the
 * first NaN/Inf. Values beyond cdm_fxp_max saturate (counted in *saturated
 * when not NULL). */
int cdm_fxp_encode_f32(uint64_t *out, const float *in, size_t n, int frac_bits,
		       const char *what, size_t *saturated, struct cdm_err *err);
int cdm_fxp_encode_f64(uint64_t *out, const double *in, size_t n, int frac_bits,
		       const char *what, size_t *saturated, struct cdm_err *err);

/* One value, saturating; NaN encodes as 0 (callers validate first). */
uint64_t cdm_fxp_from_double(double v, int frac_bits);
double cdm_fxp_to_double(uint64_t x, int frac_bits);

void cdm_fxp_decode_f32(float *out, const uint64_t *in, size_t n, int frac_bits);
void cdm_fxp_decode_f64(double *out, const uint64_t *in, size_t n, int frac_bits);

/* Elementwise ring helpers (wrap mod 2^64; out may alias inputs). */
void cdm_ring_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n);
void cdm_ring_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n);
void cdm_ring_neg(uint64_t *out, const uint64_t *a, size_t n);
void cdm_ring_mul_scalar(uint64_t *out, const uint64_t *a, uint64_t s, size_t n);
/* Arithmetic (sign-preserving) shift right of each element. */
void cdm_ring_sar(uint64_t *out, const uint64_t *a, int shift, size_t n);

/* C[m x n] (+)= A[m x k] * B[k x n] over Z_2^64, row-major. `accumulate`
 * adds into C instead of overwriting it. */
void cdm_ring_gemm(uint64_t *c, const uint64_t *a, const uint64_t *b, size_t m,
		   size_t k, size_t n, int accumulate);

#endif
