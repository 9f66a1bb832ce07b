// Host stand-in for the CUDA kernels of neuron_zoo/cuda/amplitude_kernels.cu: the same
// per-element math (it includes the very header the kernels include), looped over the
// elements of flattened [T, n] arrays instead of CUDA threads, with the same argument lists.
// Partial sums are written as a single block. Built with g++ by tests/cuda_host_harness.py.
#include "amplitude_node.cuh"

namespace {

constexpr int kFloat32 = 0;
constexpr int kBFloat16 = 1;

template <class S, int T, int RESET, bool BIDIRECTIONAL>
void forward(const void* x_, const float* amp, const float* thr, const float* v0, void* s_, float* v_last,
             unsigned char* code, int* count_partials, long long n, float decay) {
  const S* x = static_cast<const S*>(x_);
  S* s = static_cast<S*>(s_);
  float a[T], th[T];
  int n_neg[T] = {}, n_pos[T] = {};
  for (int t = 0; t < T; ++t) {
    a[t] = amp[t];
    th[t] = thr[t];
  }
  for (long long i = 0; i < n; ++i) {
    float xs[T], m[T];
    int q[T];
    bool inside[T];
    for (int t = 0; t < T; ++t) xs[t] = nz::to_float(x[t * n + i]);
    const float v = nz::forward_sequence<T, RESET, BIDIRECTIONAL>(xs, a, th, v0 ? v0[i] : 0.0f, decay, m, q, inside);
    for (int t = 0; t < T; ++t) nz::from_float(nz::spike(q[t], a[t]), s[t * n + i]);
    if (v_last) v_last[i] = v;
    if (code) {
      unsigned char packed[(T + 1) / 2];
      nz::pack_codes<T>(q, inside, packed);
      for (int j = 0; j < (T + 1) / 2; ++j) code[j * n + i] = packed[j];
    }
    for (int t = 0; t < T; ++t) {
      n_neg[t] += q[t] < 0 ? 1 : 0;
      n_pos[t] += q[t] > 0 ? 1 : 0;
    }
  }
  if (count_partials) {
    for (int t = 0; t < T; ++t) {
      count_partials[2 * t] = n_neg[t];
      count_partials[2 * t + 1] = n_pos[t];
    }
  }
}

template <class S, int T, int RESET, bool BIDIRECTIONAL>
void backward(const void* grad_s_, const unsigned char* code, const float* amp, const float* grad_v_last,
              void* grad_x_, float* grad_v0, long long n, float decay) {
  const S* grad_s = static_cast<const S*>(grad_s_);
  S* grad_x = static_cast<S*>(grad_x_);
  float a[T];
  for (int t = 0; t < T; ++t) a[t] = amp[t];
  for (long long i = 0; i < n; ++i) {
    float g[T];
    int q[T];
    bool inside[T];
    unsigned char packed[(T + 1) / 2];
    for (int t = 0; t < T; ++t) g[t] = nz::to_float(grad_s[t * n + i]);
    for (int j = 0; j < (T + 1) / 2; ++j) packed[j] = code[j * n + i];
    nz::unpack_codes<T>(packed, q, inside);
    const float gv0 = nz::backward_sequence<T, RESET>(q, inside, a, decay, g, grad_v_last ? grad_v_last[i] : 0.0f,
                                                      grad_v_last != nullptr);
    if (grad_x) {
      for (int t = 0; t < T; ++t) nz::from_float(g[t], grad_x[t * n + i]);
    }
    if (grad_v0) grad_v0[i] = gv0;
  }
}

template <class S, int T, int RESET, bool BIDIRECTIONAL>
void backward_lsq(const void* x_, const float* v0, const void* grad_s_, const float* amp, const float* thr,
                  const float* grad_v_last, void* grad_x_, float* grad_v0, double* lsq_partials, long long n,
                  float decay) {
  const S* x = static_cast<const S*>(x_);
  const S* grad_s = static_cast<const S*>(grad_s_);
  S* grad_x = static_cast<S*>(grad_x_);
  float a[T], th[T];
  double acc[T] = {};
  for (int t = 0; t < T; ++t) {
    a[t] = amp[t];
    th[t] = thr[t];
  }
  for (long long i = 0; i < n; ++i) {
    float xs[T], g[T], m[T];
    int q[T];
    bool inside[T];
    for (int t = 0; t < T; ++t) {
      xs[t] = nz::to_float(x[t * n + i]);
      g[t] = nz::to_float(grad_s[t * n + i]);
    }
    nz::forward_sequence<T, RESET, BIDIRECTIONAL>(xs, a, th, v0 ? v0[i] : 0.0f, decay, m, q, inside);
    nz::accumulate_lsq<T, BIDIRECTIONAL>(g, m, q, inside, a, acc);
    const float gv0 = nz::backward_sequence<T, RESET>(q, inside, a, decay, g, grad_v_last ? grad_v_last[i] : 0.0f,
                                                      grad_v_last != nullptr);
    if (grad_x) {
      for (int t = 0; t < T; ++t) nz::from_float(g[t], grad_x[t * n + i]);
    }
    if (grad_v0) grad_v0[i] = gv0;
  }
  for (int t = 0; t < T; ++t) lsq_partials[t] = acc[t];
}

// Calls f.template operator()<S, T, RESET, BIDIRECTIONAL>() for runtime values; false if unsupported.
template <class S, int T, int RESET, class F>
bool with_direction(int bidirectional, F& f) {
  if (bidirectional) {
    f.template operator()<S, T, RESET, true>();
  } else {
    f.template operator()<S, T, RESET, false>();
  }
  return true;
}

template <class S, int T, class F>
bool with_reset(int reset, int bidirectional, F& f) {
  switch (reset) {
    case nz::RESET_REFERENCE: return with_direction<S, T, nz::RESET_REFERENCE>(bidirectional, f);
    case nz::RESET_HARD: return with_direction<S, T, nz::RESET_HARD>(bidirectional, f);
    case nz::RESET_SOFT: return with_direction<S, T, nz::RESET_SOFT>(bidirectional, f);
    default: return false;
  }
}

template <class S, class F>
bool with_steps(int steps, int reset, int bidirectional, F& f) {
  switch (steps) {
    case 1: return with_reset<S, 1>(reset, bidirectional, f);
    case 2: return with_reset<S, 2>(reset, bidirectional, f);
    case 3: return with_reset<S, 3>(reset, bidirectional, f);
    case 4: return with_reset<S, 4>(reset, bidirectional, f);
    case 5: return with_reset<S, 5>(reset, bidirectional, f);
    case 8: return with_reset<S, 8>(reset, bidirectional, f);
    default: return false;
  }
}

template <class F>
int dispatch(int dtype, int steps, int reset, int bidirectional, F f) {
  bool done = false;
  if (dtype == kFloat32) done = with_steps<float>(steps, reset, bidirectional, f);
  if (dtype == kBFloat16) done = with_steps<nz::bf16>(steps, reset, bidirectional, f);
  return done ? 0 : -1;
}

}  // namespace

extern "C" {

// Steps the harness is built for (the kernels themselves take any T).
const int nz_harness_steps[] = {1, 2, 3, 4, 5, 8, 0};

int nz_forward(int dtype, int steps, int reset, int bidirectional, const void* x, const float* amp,
               const float* thr, const float* v0, void* s, float* v_last, unsigned char* code, int* count_partials,
               long long n, float decay) {
  return dispatch(dtype, steps, reset, bidirectional, [&]<class S, int T, int R, bool B>() {
    forward<S, T, R, B>(x, amp, thr, v0, s, v_last, code, count_partials, n, decay);
  });
}

int nz_backward(int dtype, int steps, int reset, int bidirectional, const void* grad_s, const unsigned char* code,
                const float* amp, const float* grad_v_last, void* grad_x, float* grad_v0, long long n, float decay) {
  return dispatch(dtype, steps, reset, bidirectional, [&]<class S, int T, int R, bool B>() {
    backward<S, T, R, B>(grad_s, code, amp, grad_v_last, grad_x, grad_v0, n, decay);
  });
}

int nz_backward_lsq(int dtype, int steps, int reset, int bidirectional, const void* x, const float* v0,
                    const void* grad_s, const float* amp, const float* thr, const float* grad_v_last, void* grad_x,
                    float* grad_v0, double* lsq_partials, long long n, float decay) {
  return dispatch(dtype, steps, reset, bidirectional, [&]<class S, int T, int R, bool B>() {
    backward_lsq<S, T, R, B>(x, v0, grad_s, amp, thr, grad_v_last, grad_x, grad_v0, lsq_partials, n, decay);
  });
}

// float32 <-> bfloat16 with the header's conversions.
void nz_to_bf16(const float* src, unsigned short* dst, long long n) {
  for (long long i = 0; i < n; ++i) {
    nz::bf16 b;
    nz::from_float(src[i], b);
    dst[i] = b.bits;
  }
}

void nz_from_bf16(const unsigned short* src, float* dst, long long n) {
  for (long long i = 0; i < n; ++i) dst[i] = nz::to_float(nz::bf16{src[i]});
}

}  // extern "C"
