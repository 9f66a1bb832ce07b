// Per-element math of the amplitude-coded neurons (ElasticBiNode, STELIFNode,
// TernaryFixedNode) for the fused CuPy backend: the charge / fire / reset recurrence over
// T steps, its reverse-time gradient, the LSQ step-size term and the 4-bit code saved for
// backward. Shared by the CUDA kernels (amplitude_kernels.cu) and the host test harness
// (tests/cuda_harness), so the CPU tests check this very text.
//
// It mirrors neuron_zoo/amplitude_node.py and spike_function.py operation by operation; every
// float operation is rounded once (no contraction into fused multiply-adds on the device), so
// spikes and input gradients equal the torch backend's bit for bit.
//
// Per step t (membrane in float32, v[-1] = v0 or 0):
//   charge  m[t] = decay * v[t-1] + x[t]                                    (SpikeLM Eq. 13)
//   fire    q[t] = [m >= thr[t]] - [m <= -thr[t]] (bidirectional), s = q * a[t]  (Eq. 11)
//   reset   v[t] = m * (a - s) 'reference' | m * [s == 0] 'hard' | m - s 'soft' (detached)
//   STE     ds/dm = [q_n a <= m <= a], q_n = -1 bidirectional, 0 unidirectional     (Eq. 7)
//   LSQ     ds/da = q - m / a inside that range, 1 above it, q_n below it
#ifndef NEURON_ZOO_AMPLITUDE_NODE_CUH
#define NEURON_ZOO_AMPLITUDE_NODE_CUH

#if defined(__CUDACC__)
#define NZ_HD __host__ __device__ __forceinline__
#define NZ_UNROLL _Pragma("unroll")
#else
#define NZ_HD inline
#define NZ_UNROLL
#endif

namespace nz {

enum ResetMode { RESET_REFERENCE = 0, RESET_HARD = 1, RESET_SOFT = 2 };

// ---- float operations rounded once each, like PyTorch's separate element-wise kernels ----

NZ_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

NZ_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

NZ_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

NZ_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// ---- storage types: bfloat16 and float16 as raw bits (no cuda_fp16.h / cuda_bf16.h needed) ----

struct bf16 { unsigned short bits; };
struct fp16 { unsigned short bits; };

NZ_HD float bits_to_float(unsigned int u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
#endif
}

NZ_HD unsigned int float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  unsigned int u;
  __builtin_memcpy(&u, &f, sizeof u);
  return u;
#endif
}

NZ_HD float to_float(float v) { return v; }
NZ_HD float to_float(bf16 v) { return bits_to_float(static_cast<unsigned int>(v.bits) << 16); }
NZ_HD void from_float(float f, float& out) { out = f; }

// float32 -> bfloat16, round to nearest even; NaN -> 0x7FC0 (as c10::BFloat16).
NZ_HD void from_float(float f, bf16& out) {
  unsigned int u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    out.bits = 0x7fc0;
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  out.bits = static_cast<unsigned short>(u >> 16);
}

#if defined(__CUDACC__)
// float16 conversions use the hardware instructions (round to nearest even), device only.
__device__ __forceinline__ float to_float(fp16 v) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
}

__device__ __forceinline__ void from_float(float f, fp16& out) {
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(out.bits) : "f"(f));
}
#endif

// ---- one time step ----

// m[t] = decay * v[t-1] + x[t]   (Eq. 13)
NZ_HD float charge(float decay, float v, float x) { return add_rn(mul_rn(decay, v), x); }

// Spike level q in {-1, 0, +1} ({0, +1} unidirectional) for threshold thr = threshold_scale * a.
template <bool BIDIRECTIONAL>
NZ_HD int fire(float m, float thr) {
  int q = m >= thr ? 1 : 0;
  if (BIDIRECTIONAL) q -= m <= -thr ? 1 : 0;
  return q;
}

NZ_HD float spike(int q, float a) { return mul_rn(static_cast<float>(q), a); }

// Straight-through range [q_n a, a] of the quantiser (Eq. 7).
template <bool BIDIRECTIONAL>
NZ_HD bool in_range(float m, float a) { return m >= (BIDIRECTIONAL ? -a : 0.0f) && m <= a; }

// Membrane carried to the next step, v[t] (reset term detached).
template <int RESET>
NZ_HD float reset(float m, int q, float a) {
  if (RESET == RESET_REFERENCE) return mul_rn(m, sub_rn(a, spike(q, a)));
  if (RESET == RESET_HARD) return spike(q, a) == 0.0f ? m : 0.0f;
  return sub_rn(m, spike(q, a));
}

// g * dv[t]/dm[t] for an upstream gradient g on v[t] (the reset term is a constant).
template <int RESET>
NZ_HD float reset_grad(float g, int q, float a) {
  if (RESET == RESET_REFERENCE) return mul_rn(g, sub_rn(a, spike(q, a)));
  if (RESET == RESET_HARD) return spike(q, a) == 0.0f ? g : 0.0f;
  return g;
}

// LSQ step-size gradient ds/da of one element (without the 1/sqrt(numel) factor).
template <bool BIDIRECTIONAL>
NZ_HD float lsq_step_grad(float m, int q, bool inside, float a) {
  if (inside) return sub_rn(static_cast<float>(q), div_rn(m, a));
  return m > a ? 1.0f : (BIDIRECTIONAL ? -1.0f : 0.0f);
}

// ---- whole sequence of one element ----

// Runs the T steps from membrane v; fills m, q and the straight-through mask; returns v[T-1].
template <int T, int RESET, bool BIDIRECTIONAL>
NZ_HD float forward_sequence(const float (&x)[T], const float (&a)[T], const float (&thr)[T], float v,
                             float decay, float (&m)[T], int (&q)[T], bool (&inside)[T]) {
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    m[t] = charge(decay, v, x[t]);
    q[t] = fire<BIDIRECTIONAL>(m[t], thr[t]);
    inside[t] = in_range<BIDIRECTIONAL>(m[t], a[t]);
    v = reset<RESET>(m[t], q[t], a[t]);
  }
  return v;
}

// Reverse-time gradient. In: g[t] = dL/ds[t], and dL/dv[T-1] = carry when has_carry.
// Out: g[t] = dL/dm[t] = dL/dx[t]; returns dL/dv0 = decay * dL/dm[0]. Each dL/dm[t] is the
// sum of its two uses, the spike (straight-through) and the reset carried to step t + 1.
template <int T, int RESET>
NZ_HD float backward_sequence(const int (&q)[T], const bool (&inside)[T], const float (&a)[T], float decay,
                              float (&g)[T], float carry, bool has_carry) {
  NZ_UNROLL
  for (int t = T - 1; t >= 0; --t) {
    float gm = mul_rn(g[t], inside[t] ? 1.0f : 0.0f);
    if (has_carry) gm = add_rn(gm, reset_grad<RESET>(carry, q[t], a[t]));
    g[t] = gm;
    carry = mul_rn(decay, gm);
    has_carry = true;
  }
  return carry;
}

// acc[t] += dL/ds[t] * ds[t]/da[t]  (LSQ, summed over elements by the caller).
template <int T, bool BIDIRECTIONAL>
NZ_HD void accumulate_lsq(const float (&g)[T], const float (&m)[T], const int (&q)[T],
                          const bool (&inside)[T], const float (&a)[T], double (&acc)[T]) {
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    acc[t] += static_cast<double>(mul_rn(g[t], lsq_step_grad<BIDIRECTIONAL>(m[t], q[t], inside[t], a[t])));
  }
}

// ---- the code saved for backward: one 4-bit nibble per step, two steps per byte ----
// bit 0: q = +1, bit 1: q = -1, bit 2: inside the straight-through range. Byte j of an
// element holds step 2j in its low nibble and step 2j + 1 in its high nibble.

template <int T>
NZ_HD void pack_codes(const int (&q)[T], const bool (&inside)[T], unsigned char (&code)[(T + 1) / 2]) {
  NZ_UNROLL
  for (int j = 0; j < (T + 1) / 2; ++j) code[j] = 0;
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    const unsigned int nibble = (q[t] > 0 ? 1u : 0u) | (q[t] < 0 ? 2u : 0u) | (inside[t] ? 4u : 0u);
    code[t / 2] = static_cast<unsigned char>(code[t / 2] | (nibble << (4 * (t % 2))));
  }
}

template <int T>
NZ_HD void unpack_codes(const unsigned char (&code)[(T + 1) / 2], int (&q)[T], bool (&inside)[T]) {
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    const unsigned int nibble = (code[t / 2] >> (4 * (t % 2))) & 0xfu;
    q[t] = (nibble & 1u) ? 1 : ((nibble & 2u) ? -1 : 0);
    inside[t] = (nibble & 4u) != 0;
  }
}

}  // namespace nz

#endif  // NEURON_ZOO_AMPLITUDE_NODE_CUH
