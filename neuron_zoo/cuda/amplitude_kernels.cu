// Fused multi-step kernels of the amplitude-coded neurons (see amplitude_node.cuh for the
// math). Tensors are [T, n] row-major (time-major, contiguous). Every thread owns VEC
// consecutive elements (16 bytes of input per step) and runs all T steps of them in registers,
// in a grid-stride loop; per-step sums (spike counts, LSQ gradient) are reduced per block and
// written as one partial per block, which the host sums. Optional pointers may be null.
//
// Template arguments: storage type S (float, nz::bf16, nz::fp16), T steps, RESET (ResetMode),
// BIDIRECTIONAL. `vectorized` (host-checked: n % VEC == 0 and every pointer aligned) selects
// 16-byte loads and stores; otherwise each element is accessed on its own.
#include "amplitude_node.cuh"

namespace nz {

constexpr int THREADS = 256;

template <class S>
struct Vec {
  static constexpr int size = 16 / static_cast<int>(sizeof(S));
};

template <class V, int N>
struct alignas(sizeof(V) * N) Pack {
  V v[N];
};

template <int N, class S>
__device__ __forceinline__ void load_values(const S* __restrict__ p, int count, bool vectorized,
                                            float (&out)[N]) {
  if (vectorized) {
    const Pack<S, N> w = *reinterpret_cast<const Pack<S, N>*>(p);
    NZ_UNROLL
    for (int e = 0; e < N; ++e) out[e] = to_float(w.v[e]);
  } else {
    NZ_UNROLL
    for (int e = 0; e < N; ++e) out[e] = e < count ? to_float(p[e]) : 0.0f;
  }
}

template <int N, class S>
__device__ __forceinline__ void store_values(S* __restrict__ p, int count, bool vectorized,
                                             const float (&values)[N]) {
  Pack<S, N> w;
  NZ_UNROLL
  for (int e = 0; e < N; ++e) from_float(values[e], w.v[e]);
  if (vectorized) {
    *reinterpret_cast<Pack<S, N>*>(p) = w;
  } else {
    NZ_UNROLL
    for (int e = 0; e < N; ++e) {
      if (e < count) p[e] = w.v[e];
    }
  }
}

template <int N>
__device__ __forceinline__ void load_bytes(const unsigned char* __restrict__ p, int count, bool vectorized,
                                           unsigned char (&out)[N]) {
  if (vectorized) {
    const Pack<unsigned char, N> w = *reinterpret_cast<const Pack<unsigned char, N>*>(p);
    NZ_UNROLL
    for (int e = 0; e < N; ++e) out[e] = w.v[e];
  } else {
    NZ_UNROLL
    for (int e = 0; e < N; ++e) out[e] = e < count ? p[e] : 0;
  }
}

template <int N>
__device__ __forceinline__ void store_bytes(unsigned char* __restrict__ p, int count, bool vectorized,
                                            const unsigned char (&values)[N]) {
  if (vectorized) {
    Pack<unsigned char, N> w;
    NZ_UNROLL
    for (int e = 0; e < N; ++e) w.v[e] = values[e];
    *reinterpret_cast<Pack<unsigned char, N>*>(p) = w;
  } else {
    NZ_UNROLL
    for (int e = 0; e < N; ++e) {
      if (e < count) p[e] = values[e];
    }
  }
}

template <class V>
__device__ __forceinline__ V warp_sum(V v) {
  NZ_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the block, valid in thread 0. Every thread of the block must call it.
template <class V>
__device__ __forceinline__ V block_sum(V v, V* shared) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();  // the previous call may still be reading `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = V(0);
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? shared[lane] : V(0);
    v = warp_sum(v);
  }
  return v;
}

// Loads the T steps of N elements starting at element i0 of a [T, n] tensor: x[e][t].
template <int N, int T, class S>
__device__ __forceinline__ void load_steps(const S* __restrict__ p, long long n, long long i0, int count,
                                           bool vectorized, float (&x)[N][T]) {
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    float values[N];
    load_values<N>(p + t * n + i0, count, vectorized, values);
    NZ_UNROLL
    for (int e = 0; e < N; ++e) x[e][t] = values[e];
  }
}

template <int N, int T, class S>
__device__ __forceinline__ void store_step(S* __restrict__ p, int count, bool vectorized,
                                           const float (&y)[N][T], int t) {
  float values[N];
  NZ_UNROLL
  for (int e = 0; e < N; ++e) values[e] = y[e][t];
  store_values<N>(p, count, vectorized, values);
}

// VEC values of an optional float32 input at element i0, zeros when it is absent (null).
template <int N>
__device__ __forceinline__ void load_or_zero(const float* __restrict__ p, long long i0, int count, bool vectorized,
                                             float (&out)[N]) {
  if (p != nullptr) {
    load_values<N>(p + i0, count, vectorized, out);
  } else {
    NZ_UNROLL
    for (int e = 0; e < N; ++e) out[e] = 0.0f;
  }
}

// dL/dx of T steps and dL/dv0 of VEC elements at i0, each only where requested (non-null).
template <int N, int T, class S>
__device__ __forceinline__ void store_gradients(S* __restrict__ grad_x, float* __restrict__ grad_v0, long long n,
                                                long long i0, int count, bool vectorized, const float (&g)[N][T],
                                                const float (&g_v0)[N]) {
  if (grad_x != nullptr) {
    NZ_UNROLL
    for (int t = 0; t < T; ++t) store_step<N, T>(grad_x + t * n + i0, count, vectorized, g, t);
  }
  if (grad_v0 != nullptr) store_values<N>(grad_v0 + i0, count, vectorized, g_v0);
}

// Grid-stride loop over chunks of VEC elements: i0 is a chunk's first element; the last chunk
// may be partial (see chunk_size).
#define NZ_FOR_EACH_CHUNK(i0, n, VEC)                                                           \
  for (long long i0 = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) * (VEC);  \
       i0 < (n); i0 += static_cast<long long>(gridDim.x) * blockDim.x * (VEC))

__device__ __forceinline__ int chunk_size(long long n, long long i0, int vec) {
  return static_cast<int>(n - i0 < vec ? n - i0 : vec);
}

// Forward: spikes s (input dtype), final membrane v_last (float32), optionally the backward code
// ([(T + 1) / 2, n] bytes) and per-block spike counts (count_partials[block][t] = {#-, #+}).
template <class S, int T, int RESET, bool BIDIRECTIONAL>
__global__ void __launch_bounds__(THREADS)
amplitude_forward(const S* __restrict__ x, const float* __restrict__ amp, const float* __restrict__ thr,
                  const float* __restrict__ v0, S* __restrict__ s, float* __restrict__ v_last,
                  unsigned char* __restrict__ code, int* __restrict__ count_partials, long long n, float decay,
                  int vectorized) {
  constexpr int VEC = Vec<S>::size;
  constexpr int CODE_BYTES = (T + 1) / 2;
  float a[T], th[T];
  int n_neg[T], n_pos[T];
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    a[t] = amp[t];
    th[t] = thr[t];
    n_neg[t] = 0;
    n_pos[t] = 0;
  }
  const bool vec = vectorized != 0;
  NZ_FOR_EACH_CHUNK(i0, n, VEC) {
    const int count = chunk_size(n, i0, VEC);
    float xs[VEC][T];
    load_steps<VEC, T>(x, n, i0, count, vec, xs);
    float v[VEC];
    load_or_zero<VEC>(v0, i0, count, vec, v);
    float m[VEC][T];
    int q[VEC][T];
    bool inside[VEC][T];
    NZ_UNROLL
    for (int e = 0; e < VEC; ++e) {
      v[e] = forward_sequence<T, RESET, BIDIRECTIONAL>(xs[e], a, th, v[e], decay, m[e], q[e], inside[e]);
      NZ_UNROLL
      for (int t = 0; t < T; ++t) xs[e][t] = spike(q[e][t], a[t]);
    }
    NZ_UNROLL
    for (int t = 0; t < T; ++t) store_step<VEC, T>(s + t * n + i0, count, vec, xs, t);
    if (v_last != nullptr) store_values<VEC>(v_last + i0, count, vec, v);
    if (code != nullptr) {
      unsigned char packed[VEC][CODE_BYTES];
      NZ_UNROLL
      for (int e = 0; e < VEC; ++e) pack_codes<T>(q[e], inside[e], packed[e]);
      NZ_UNROLL
      for (int j = 0; j < CODE_BYTES; ++j) {
        unsigned char row[VEC];
        NZ_UNROLL
        for (int e = 0; e < VEC; ++e) row[e] = packed[e][j];
        store_bytes<VEC>(code + j * n + i0, count, vec, row);
      }
    }
    if (count_partials != nullptr) {
      NZ_UNROLL
      for (int e = 0; e < VEC; ++e) {
        NZ_UNROLL
        for (int t = 0; t < T; ++t) {
          n_neg[t] += (e < count && q[e][t] < 0) ? 1 : 0;
          n_pos[t] += (e < count && q[e][t] > 0) ? 1 : 0;
        }
      }
    }
  }
  if (count_partials != nullptr) {
    __shared__ int shared[32];
    NZ_UNROLL
    for (int t = 0; t < T; ++t) {
      const int neg = block_sum(n_neg[t], shared);
      const int pos = block_sum(n_pos[t], shared);
      if (threadIdx.x == 0) {
        count_partials[(static_cast<long long>(blockIdx.x) * T + t) * 2] = neg;
        count_partials[(static_cast<long long>(blockIdx.x) * T + t) * 2 + 1] = pos;
      }
    }
  }
}

// Backward from the saved code: grad_x (input dtype) and, if requested, grad_v0 (float32);
// grad_v_last (float32) is the gradient arriving on the final membrane, if any.
template <class S, int T, int RESET, bool BIDIRECTIONAL>
__global__ void __launch_bounds__(THREADS)
amplitude_backward(const S* __restrict__ grad_s, const unsigned char* __restrict__ code,
                   const float* __restrict__ amp, const float* __restrict__ grad_v_last, S* __restrict__ grad_x,
                   float* __restrict__ grad_v0, long long n, float decay, int vectorized) {
  constexpr int VEC = Vec<S>::size;
  constexpr int CODE_BYTES = (T + 1) / 2;
  float a[T];
  NZ_UNROLL
  for (int t = 0; t < T; ++t) a[t] = amp[t];
  const bool vec = vectorized != 0;
  NZ_FOR_EACH_CHUNK(i0, n, VEC) {
    const int count = chunk_size(n, i0, VEC);
    float g[VEC][T];
    load_steps<VEC, T>(grad_s, n, i0, count, vec, g);
    unsigned char packed[VEC][CODE_BYTES];
    NZ_UNROLL
    for (int j = 0; j < CODE_BYTES; ++j) {
      unsigned char row[VEC];
      load_bytes<VEC>(code + j * n + i0, count, vec, row);
      NZ_UNROLL
      for (int e = 0; e < VEC; ++e) packed[e][j] = row[e];
    }
    float carry[VEC];
    load_or_zero<VEC>(grad_v_last, i0, count, vec, carry);
    NZ_UNROLL
    for (int e = 0; e < VEC; ++e) {
      int q[T];
      bool inside[T];
      unpack_codes<T>(packed[e], q, inside);
      carry[e] = backward_sequence<T, RESET>(q, inside, a, decay, g[e], carry[e], grad_v_last != nullptr);
    }
    store_gradients<VEC, T>(grad_x, grad_v0, n, i0, count, vec, g, carry);
  }
}

// Backward with a learnable amplitude: recomputes the forward from x (and v0) in registers,
// writes grad_x / grad_v0 as amplitude_backward does and per-block LSQ sums
// lsq_partials[block][t] = sum over elements of dL/ds[t] * ds[t]/da[t].
template <class S, int T, int RESET, bool BIDIRECTIONAL>
__global__ void __launch_bounds__(THREADS)
amplitude_backward_lsq(const S* __restrict__ x, const float* __restrict__ v0, const S* __restrict__ grad_s,
                       const float* __restrict__ amp, const float* __restrict__ thr,
                       const float* __restrict__ grad_v_last, S* __restrict__ grad_x, float* __restrict__ grad_v0,
                       double* __restrict__ lsq_partials, long long n, float decay, int vectorized) {
  constexpr int VEC = Vec<S>::size;
  float a[T], th[T];
  double acc[T];
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    a[t] = amp[t];
    th[t] = thr[t];
    acc[t] = 0.0;
  }
  const bool vec = vectorized != 0;
  NZ_FOR_EACH_CHUNK(i0, n, VEC) {
    const int count = chunk_size(n, i0, VEC);
    float xs[VEC][T], g[VEC][T];
    load_steps<VEC, T>(x, n, i0, count, vec, xs);
    load_steps<VEC, T>(grad_s, n, i0, count, vec, g);
    float v[VEC], carry[VEC];
    load_or_zero<VEC>(v0, i0, count, vec, v);
    load_or_zero<VEC>(grad_v_last, i0, count, vec, carry);
    NZ_UNROLL
    for (int e = 0; e < VEC; ++e) {
      float m[T];
      int q[T];
      bool inside[T];
      forward_sequence<T, RESET, BIDIRECTIONAL>(xs[e], a, th, v[e], decay, m, q, inside);
      if (e < count) accumulate_lsq<T, BIDIRECTIONAL>(g[e], m, q, inside, a, acc);
      carry[e] = backward_sequence<T, RESET>(q, inside, a, decay, g[e], carry[e], grad_v_last != nullptr);
    }
    store_gradients<VEC, T>(grad_x, grad_v0, n, i0, count, vec, g, carry);
  }
  __shared__ double shared[32];
  NZ_UNROLL
  for (int t = 0; t < T; ++t) {
    const double total = block_sum(acc[t], shared);
    if (threadIdx.x == 0) lsq_partials[static_cast<long long>(blockIdx.x) * T + t] = total;
  }
}

}  // namespace nz
