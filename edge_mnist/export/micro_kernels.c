/* edge-mnist's int8 kernels for interpreter-free C: TFLite's reference integer arithmetic, as
 * TensorFlow Lite Micro's reference kernels compute it (gemmlowp's fixed point, double-rounding
 * requantization), so a model's outputs equal TFLM's byte for byte. C99 and <stdint.h> only: no
 * malloc, no stdio, no libm. Where the core has the DSP extension (__ARM_FEATURE_DSP), dot products
 * run two 16-bit multiply-accumulates per instruction (SMLAD); the sums are the same integers. */
#include <stdint.h>
#if defined(__ARM_FEATURE_DSP) && !defined(EDGE_MNIST_NO_DSP)
#include <arm_acle.h>
#define EM_DSP 1
#endif

/* gemmlowp::SaturatingRoundingDoublingHighMul: (a * b * 2) / 2^32, rounded, saturating MIN * MIN. */
static int32_t em_srdhm(int32_t a, int32_t b) {
  int64_t ab, nudged;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudged = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
  /* Division by 2^31 rounding toward zero, as C++'s `/` does, without a 64-bit division call. */
  return (int32_t)(nudged >= 0 ? (nudged >> 31) : -((-nudged) >> 31));
}

/* gemmlowp::RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero. */
static int32_t em_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^left_shift with int32 wrap-around, as TFLite's `x * (1 << shift)` behaves. */
static int32_t em_shl(int32_t x, int left_shift) {
  return (int32_t)((uint32_t)x << left_shift);
}

#if defined(EM_USE_CONV) || defined(EM_USE_DEPTHWISE) || defined(EM_USE_DENSE) || defined(EM_USE_MUL) || defined(EM_USE_MEAN) \
    || defined(EM_USE_RELU)
/* tflite::MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift. */
static int32_t em_requant(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return em_rdbpot(em_srdhm(em_shl(x, left), multiplier), right);
}

#endif

static int8_t em_clamp(int32_t v, int32_t lo, int32_t hi) {
  return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#if defined(EM_USE_CONV) || defined(EM_USE_DENSE)
/* The inner loop of every convolution and dense layer, for two filters at once: adds the sums over i < n
 * of w0[i] * (a[i] + a_offset) and of w1[i] * (a[i] + a_offset) to *acc0 and *acc1. The input is loaded
 * and widened once for both filters; with DSP, two 16-bit products per SMLAD. */
static void em_dot2(const int8_t *a, const int8_t *w0, const int8_t *w1, int n, int32_t a_offset, int32_t *acc0,
                    int32_t *acc1) {
  int32_t s0 = 0, s1 = 0;
  int i = 0;
#ifdef EM_DSP
  const uint32_t off2 = ((uint32_t)(uint16_t)a_offset << 16) | (uint16_t)a_offset;
  for (; i + 4 <= n; i += 4) {
    uint32_t av, v0, v1;
    int32_t a02, a13;
    __builtin_memcpy(&av, a + i, 4);
    __builtin_memcpy(&v0, w0 + i, 4);
    __builtin_memcpy(&v1, w1 + i, 4);
    a02 = __sadd16(__sxtb16(av), off2);
    a13 = __sadd16(__sxtb16((av >> 8) | (av << 24)), off2);
    s0 = __smlad(a02, __sxtb16(v0), s0);
    s0 = __smlad(a13, __sxtb16((v0 >> 8) | (v0 << 24)), s0);
    s1 = __smlad(a02, __sxtb16(v1), s1);
    s1 = __smlad(a13, __sxtb16((v1 >> 8) | (v1 << 24)), s1);
  }
#endif
  for (; i < n; ++i) {
    const int32_t x = (int32_t)a[i] + a_offset;
    s0 += (int32_t)w0[i] * x;
    s1 += (int32_t)w1[i] * x;
  }
  *acc0 += s0;
  *acc1 += s1;
}

#endif

#if defined(EM_USE_CONV) || defined(EM_USE_DEPTHWISE)
typedef struct {
  int in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
} em_conv_t;

#if defined(EM_USE_CONV)
/* reference_integer_ops::ConvPerChannel (one batch, no groups). */
static void em_conv(const em_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                    const int32_t *mult, const int32_t *shift, int8_t *out) {
  int oy, ox, oc, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
      /* The taps inside the image (zero padding: the ones outside are left out of the sum). With
       * no horizontal dilation a row of taps is one run of memory in the input and the filter. */
      int kx_first = 0, kx_last = p->k_w;
      while (kx_first < kx_last && x0 + p->dil_w * kx_first < 0) ++kx_first;
      while (kx_last > kx_first && x0 + p->dil_w * (kx_last - 1) >= p->in_w) --kx_last;
      for (oc = 0; oc < p->out_c; oc += 2) {
        /* two output channels per pass share the input's loads; an odd last one pairs with itself */
        const int oc1 = oc + 1 < p->out_c ? oc + 1 : oc;
        int32_t acc0 = 0, acc1 = 0;
        for (ky = 0; ky < p->k_h; ++ky) {
          const int y = y0 + p->dil_h * ky;
          const int8_t *row = in + (y * p->in_w + x0) * p->in_c;
          const int8_t *taps0 = w + (oc * p->k_h + ky) * p->k_w * p->in_c;
          const int8_t *taps1 = w + (oc1 * p->k_h + ky) * p->k_w * p->in_c;
          if (y < 0 || y >= p->in_h || kx_first == kx_last) continue;
          if (p->dil_w == 1) {
            em_dot2(row + kx_first * p->in_c, taps0 + kx_first * p->in_c, taps1 + kx_first * p->in_c,
                    (kx_last - kx_first) * p->in_c, p->in_offset, &acc0, &acc1);
          } else {
            for (kx = kx_first; kx < kx_last; ++kx) {
              em_dot2(row + p->dil_w * kx * p->in_c, taps0 + kx * p->in_c, taps1 + kx * p->in_c, p->in_c,
                      p->in_offset, &acc0, &acc1);
            }
          }
        }
        if (bias) {
          acc0 += bias[oc];
          acc1 += bias[oc1];
        }
        *out++ = em_clamp(em_requant(acc0, mult[oc], shift[oc]) + p->out_offset, p->act_min, p->act_max);
        if (oc1 != oc) *out++ = em_clamp(em_requant(acc1, mult[oc1], shift[oc1]) + p->out_offset, p->act_min,
                                         p->act_max);
      }
    }
  }
}
#endif

#endif

#if defined(EM_USE_DEPTHWISE)
/* reference_integer_ops::DepthwiseConvPerChannel (one batch); out_c = in_c * depth multiplier. */
static void em_depthwise(const em_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                         const int32_t *mult, const int32_t *shift, int8_t *out) {
  const int multiplier = p->out_c / p->in_c;
  int oy, ox, ic, m, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
      for (ic = 0; ic < p->in_c; ++ic) {
        for (m = 0; m < multiplier; ++m) {
          const int oc = m + ic * multiplier;
          int32_t acc = 0;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int y = y0 + p->dil_h * ky;
            if (y < 0 || y >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int x = x0 + p->dil_w * kx;
              if (x < 0 || x >= p->in_w) continue;
              acc += (int32_t)w[(ky * p->k_w + kx) * p->out_c + oc]
                     * ((int32_t)in[(y * p->in_w + x) * p->in_c + ic] + p->in_offset);
            }
          }
          if (bias) acc += bias[oc];
          acc = em_requant(acc, mult[oc], shift[oc]) + p->out_offset;
          out[(oy * p->out_w + ox) * p->out_c + oc] = em_clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}

#endif

#if defined(EM_USE_DENSE)
/* reference_integer_ops::FullyConnected (per-tensor or per-channel: one multiplier per output). */
static void em_dense(int depth, int units, const int8_t *in, const int8_t *w, const int32_t *bias,
                     const int32_t *mult, const int32_t *shift, int32_t in_offset, int32_t out_offset,
                     int32_t act_min, int32_t act_max, int8_t *out) {
  int u;
  for (u = 0; u < units; u += 2) {
    /* two units per pass share the input's loads; an odd last one pairs with itself */
    const int u1 = u + 1 < units ? u + 1 : u;
    int32_t acc0 = 0, acc1 = 0;
    em_dot2(in, w + u * depth, w + u1 * depth, depth, in_offset, &acc0, &acc1);
    if (bias) {
      acc0 += bias[u];
      acc1 += bias[u1];
    }
    out[u] = em_clamp(em_requant(acc0, mult[u], shift[u]) + out_offset, act_min, act_max);
    out[u1] = em_clamp(em_requant(acc1, mult[u1], shift[u1]) + out_offset, act_min, act_max);
  }
}
#endif

#if defined(EM_USE_POOL)
typedef struct {
  int in_h, in_w, c, k_h, k_w, out_h, out_w, stride_h, stride_w, pad_h, pad_w;
  int32_t act_min, act_max;
} em_pool_t;

/* reference_integer_ops::MaxPool (average = 0) and AveragePool (average = 1), one batch. */
static void em_pool(const em_pool_t *p, int average, const int8_t *in, int8_t *out) {
  int oy, ox, c, y, x;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
      const int ys = y0 < 0 ? -y0 : 0, xs = x0 < 0 ? -x0 : 0;
      const int ye = p->k_h < p->in_h - y0 ? p->k_h : p->in_h - y0;
      const int xe = p->k_w < p->in_w - x0 ? p->k_w : p->in_w - x0;
      for (c = 0; c < p->c; ++c) {
        int32_t acc = average ? 0 : -128, count = 0;
        for (y = ys; y < ye; ++y) {
          for (x = xs; x < xe; ++x) {
            const int32_t v = in[((y0 + y) * p->in_w + x0 + x) * p->c + c];
            if (average) acc += v; else if (v > acc) acc = v;
            ++count;
          }
        }
        if (average && count) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        *out++ = em_clamp(acc, p->act_min, p->act_max);
      }
    }
  }
}

#endif

#if defined(EM_USE_ADD)
/* reference_integer_ops::Add; b holds b_n values repeated over a's n (b_n = n, or a per-channel or
 * scalar constant broadcast over the trailing dimension, as a folded BatchNorm's shift is). */
static void em_add(int n, int b_n, const int8_t *a, const int8_t *b, const int32_t *q, int8_t *out) {
  /* q: a offset, a multiplier, a shift, b offset, b multiplier, b shift, left shift, output
   * multiplier, output shift, output offset, activation min, activation max */
  int i;
  for (i = 0; i < n; ++i) {
    const int32_t sa = em_rdbpot(em_srdhm(em_shl((int32_t)a[i] + q[0], q[6]), q[1]), -q[2]);
    const int32_t sb = em_rdbpot(em_srdhm(em_shl((int32_t)b[i % b_n] + q[3], q[6]), q[4]), -q[5]);
    const int32_t raw = em_rdbpot(em_srdhm(sa + sb, q[7]), -q[8]) + q[9];
    out[i] = em_clamp(raw, q[10], q[11]);
  }
}
#endif

#if defined(EM_USE_MUL)
/* reference_integer_ops::Mul, b broadcast as in em_add (a folded BatchNorm's per-channel scale). */
static void em_mul(int n, int b_n, const int8_t *a, const int8_t *b, const int32_t *q, int8_t *out) {
  /* q: a offset, b offset, multiplier, shift, output offset, activation min, activation max */
  int i;
  for (i = 0; i < n; ++i) {
    const int32_t product = ((int32_t)a[i] + q[0]) * ((int32_t)b[i % b_n] + q[1]);
    out[i] = em_clamp(em_requant(product, q[2], q[3]) + q[4], q[5], q[6]);
  }
}
#endif

#if defined(EM_USE_MEAN)
/* reference_ops::QuantizedMeanOrSum over height and width (a global average pool): per channel,
 * the sum less the zero point times the count, scaled by a multiplier with 1/count folded in. */
static void em_mean(int positions, int channels, const int8_t *in, int32_t in_zp, int32_t multiplier,
                    int32_t shift, int32_t out_zp, int8_t *out) {
  int c, i;
  for (c = 0; c < channels; ++c) {
    int32_t sum = 0;
    for (i = 0; i < positions; ++i) sum += in[i * channels + c];
    out[c] = em_clamp(em_requant(sum - in_zp * positions, multiplier, shift) + out_zp, -128, 127);
  }
}
#endif

#if defined(EM_USE_RELU)
/* TFLM's ReluQuantized: requantized to the output's scale, clamped at its zero (a ReLU the converter
 * could not fuse, as after a global average pool). q: input zero point, multiplier, shift, output zero
 * point, activation min, activation max. */
static void em_relu(int n, const int8_t *in, const int32_t *q, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = em_clamp(q[3] + em_requant((int32_t)in[i] - q[0], q[1], q[2]), q[4], q[5]);
}
#endif

#if defined(EM_USE_CLIP)
/* TFLM's Relu6Quantized: the input clamped to [its zero, its 6.0], no requantization. */
static void em_clip(int n, const int8_t *in, int32_t low, int32_t high, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = em_clamp(in[i], low, high);
}
#endif

#if defined(EM_USE_SOFTMAX)
/* gemmlowp fixed point for softmax: Q0.31 products, exp on negative values, 1 / (1 + x). */
static int32_t em_sat_shl(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)((((int64_t)1) << (31 - exponent)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return em_shl(x, exponent);
}

static int32_t em_add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

static int32_t em_sub_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

static int32_t em_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp's Taylor expansion around -1/8). */
static int32_t em_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668, one_third = 715827883;
  const int32_t x = em_add_wrap(a, 1 << 28);
  const int32_t x2 = em_srdhm(x, x), x3 = em_srdhm(x2, x), x4 = em_srdhm(x2, x2);
  const int32_t x4_over_4 = em_rdbpot(x4, 2);
  const int32_t poly = em_rdbpot(em_add_wrap(em_srdhm(em_add_wrap(x4_over_4, x3), one_third), x2), 1);
  return em_add_wrap(constant_term, em_srdhm(constant_term, em_add_wrap(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, result Q0.31 (gemmlowp::exp_on_negative_values, 5 integer bits). */
static int32_t em_exp_negative(int32_t a) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t quarter = 1 << 24, mask = quarter - 1;
  const int32_t a_mod = em_sub_wrap(a & mask, quarter);
  const int32_t remainder = em_sub_wrap(a_mod, a);
  int32_t result = em_exp_quarter(em_sat_shl(a_mod, 5));
  int k;
  for (k = 0; k < 7; ++k) {
    if (remainder & (1 << (26 - 2 + k))) result = em_srdhm(result, multipliers[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 (Newton-Raphson, gemmlowp::one_over_one_plus_x_for_x_in_0_1). */
static int32_t em_one_over_one_plus(int32_t a) {
  const int32_t half_denominator = em_half_sum(a, INT32_MAX);
  const int32_t c48_17 = 1515870810, c_neg32_17 = -1010580540, one_q2 = 1 << 29;
  int32_t x = em_add_wrap(c48_17, em_srdhm(half_denominator, c_neg32_17));
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = em_sub_wrap(one_q2, em_srdhm(half_denominator, x));
    x = em_add_wrap(x, em_sat_shl(em_srdhm(x, one_minus), 2));
  }
  return em_sat_shl(x, 1);
}

static int em_clz(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) { x <<= 1; ++n; }
  return n;
}

/* reference_ops::Softmax, int8 in and out (output scale 1/256, zero point -128). */
static void em_softmax(int rows, int depth, const int8_t *in, int32_t multiplier, int32_t left_shift,
                       int32_t diff_min, int8_t *out) {
  int r, c;
  for (r = 0; r < rows; ++r, in += depth, out += depth) {
    int32_t max = -128, sum = 0, scale, headroom, bits_over_unit, exponent;
    for (c = 0; c < depth; ++c) if (in[c] > max) max = in[c];
    for (c = 0; c < depth; ++c) {
      const int32_t diff = (int32_t)in[c] - max;
      if (diff >= diff_min) {
        sum = em_add_wrap(sum, em_rdbpot(em_exp_negative(em_srdhm(em_shl(diff, left_shift), multiplier)), 12));
      }
    }
    headroom = em_clz((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    scale = em_one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
    exponent = bits_over_unit + 31 - 8;
    for (c = 0; c < depth; ++c) {
      const int32_t diff = (int32_t)in[c] - max;
      if (diff >= diff_min) {
        const int32_t e = em_exp_negative(em_srdhm(em_shl(diff, left_shift), multiplier));
        out[c] = em_clamp(em_rdbpot(em_srdhm(scale, e), exponent) - 128, -128, 127);
      } else {
        out[c] = -128;
      }
    }
  }
}
#endif
