// MoE dispatch kernels: permute (gather rows), its deterministic backward, weighted un-permute/combine and
// its backward, a tiled grouped GEMM over expert row groups and the grouped weight-gradient GEMM.
// Accumulation is in float32 for every dtype; nothing uses atomics, so results are deterministic.
#include "dispatch_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

constexpr int TILE = 16;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

int blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <typename T>
__global__ void gather_rows_kernel(const T* src, const int64_t* index, T* out, int64_t n_rows, int64_t d) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_rows * d; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / d, c = i % d;
    out[i] = src[index[r] * d + c];
  }
}

template <typename T>
__global__ void sum_slots_kernel(const T* g, const int64_t* inverse, T* gx, int64_t n_tokens, int64_t k, int64_t d) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_tokens * d; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t t = i / d, c = i % d;
    float acc = 0.f;
    for (int64_t j = 0; j < k; ++j) acc += to_f(g[inverse[t * k + j] * d + c]);
    gx[i] = from_f<T>(acc);
  }
}

template <typename T>
__global__ void combine_kernel(const T* out, const T* w, const int64_t* inverse, T* y, int64_t n_tokens, int64_t k,
                               int64_t d) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_tokens * d; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t t = i / d, c = i % d;
    float acc = 0.f;
    for (int64_t j = 0; j < k; ++j) acc += to_f(w[t * k + j]) * to_f(out[inverse[t * k + j] * d + c]);
    y[i] = from_f<T>(acc);
  }
}

// One block per slot s: writes the slot's row of grad_out_sorted and reduces its weight gradient.
template <typename T>
__global__ void combine_backward_kernel(const T* gy, const T* out, const T* w, const int64_t* inverse, T* g_out,
                                        T* g_w, int64_t k, int64_t d) {
  __shared__ float partial[128];
  int64_t s = blockIdx.x, t = s / k, row = inverse[s];
  float ws = to_f(w[s]), acc = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float g = to_f(gy[t * d + c]);
    g_out[row * d + c] = from_f<T>(ws * g);
    acc += g * to_f(out[row * d + c]);
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) g_w[s] = from_f<T>(partial[0]);
}

template <typename T>
__global__ void grouped_gemm_kernel(const T* a, const T* b, T* c, const int32_t* tile_expert, const int32_t* tile_start,
                                    const int32_t* tile_end, int64_t k_dim, int64_t n_dim, int64_t sbe, int64_t sbi,
                                    int64_t sbj) {
  __shared__ float as[TILE][TILE + 1];
  __shared__ float bs[TILE][TILE + 1];
  const int tile = blockIdx.x;
  const int64_t e = tile_expert[tile], r1 = tile_end[tile];
  const int64_t row = tile_start[tile] + threadIdx.y, col = (int64_t)blockIdx.y * TILE + threadIdx.x;
  const T* be = b + e * sbe;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < k_dim; k0 += TILE) {
    int64_t ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (row < r1 && ka < k_dim) ? to_f(a[row * k_dim + ka]) : 0.f;
    bs[threadIdx.y][threadIdx.x] = (kb < k_dim && col < n_dim) ? to_f(be[kb * sbi + col * sbj]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TILE; ++kk) acc += as[threadIdx.y][kk] * bs[kk][threadIdx.x];
    __syncthreads();
  }
  if (row < r1 && col < n_dim) c[row * n_dim + col] = from_f<T>(acc);
}

template <typename T>
__global__ void grouped_wgrad_kernel(const T* a, const T* g, const int32_t* offsets, T* dw, int64_t k_dim,
                                     int64_t n_dim) {
  __shared__ float as[TILE][TILE + 1];
  __shared__ float gs[TILE][TILE + 1];
  const int64_t e = blockIdx.z, r_begin = offsets[e], r_end = offsets[e + 1];
  const int64_t i0 = (int64_t)blockIdx.y * TILE, j0 = (int64_t)blockIdx.x * TILE;
  float acc = 0.f;
  for (int64_t r0 = r_begin; r0 < r_end; r0 += TILE) {
    int64_t r = r0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (r < r_end && i0 + threadIdx.x < k_dim) ? to_f(a[r * k_dim + i0 + threadIdx.x]) : 0.f;
    gs[threadIdx.y][threadIdx.x] = (r < r_end && j0 + threadIdx.x < n_dim) ? to_f(g[r * n_dim + j0 + threadIdx.x]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < TILE; ++rr) acc += as[rr][threadIdx.y] * gs[rr][threadIdx.x];
    __syncthreads();
  }
  int64_t i = i0 + threadIdx.y, j = j0 + threadIdx.x;
  if (i < k_dim && j < n_dim) dw[(e * k_dim + i) * n_dim + j] = from_f<T>(acc);
}

template <template <typename> class Launch, typename... Args>
cudaError_t by_dtype(int dtype, Args... args) {
  switch (dtype) {
    case BMOE_F32: Launch<float>::run(args...); break;
    case BMOE_F16: Launch<__half>::run(args...); break;
    case BMOE_BF16: Launch<__nv_bfloat16>::run(args...); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T> struct GatherRows {
  static void run(const void* src, const int64_t* index, void* out, int64_t n, int64_t d, cudaStream_t st) {
    gather_rows_kernel<T><<<blocks_for(n * d, 256), 256, 0, st>>>(static_cast<const T*>(src), index,
                                                                   static_cast<T*>(out), n, d);
  }
};
template <typename T> struct SumSlots {
  static void run(const void* g, const int64_t* inv, void* gx, int64_t n, int64_t k, int64_t d, cudaStream_t st) {
    sum_slots_kernel<T><<<blocks_for(n * d, 256), 256, 0, st>>>(static_cast<const T*>(g), inv, static_cast<T*>(gx),
                                                                 n, k, d);
  }
};
template <typename T> struct Combine {
  static void run(const void* out, const void* w, const int64_t* inv, void* y, int64_t n, int64_t k, int64_t d,
                  cudaStream_t st) {
    combine_kernel<T><<<blocks_for(n * d, 256), 256, 0, st>>>(static_cast<const T*>(out), static_cast<const T*>(w),
                                                               inv, static_cast<T*>(y), n, k, d);
  }
};
template <typename T> struct CombineBackward {
  static void run(const void* gy, const void* out, const void* w, const int64_t* inv, void* g_out, void* g_w,
                  int64_t n, int64_t k, int64_t d, cudaStream_t st) {
    if (n * k == 0) return;
    combine_backward_kernel<T><<<static_cast<unsigned>(n * k), 128, 0, st>>>(
        static_cast<const T*>(gy), static_cast<const T*>(out), static_cast<const T*>(w), inv, static_cast<T*>(g_out),
        static_cast<T*>(g_w), k, d);
  }
};
template <typename T> struct GroupedGemm {
  static void run(const void* a, const void* b, void* c, const int32_t* te, const int32_t* ts, const int32_t* tend,
                  int64_t n_tiles, int64_t k_dim, int64_t n_dim, int64_t sbe, int64_t sbi, int64_t sbj, cudaStream_t st) {
    if (n_tiles == 0) return;
    dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>((n_dim + TILE - 1) / TILE));
    grouped_gemm_kernel<T><<<grid, dim3(TILE, TILE), 0, st>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                               static_cast<T*>(c), te, ts, tend, k_dim, n_dim, sbe, sbi, sbj);
  }
};
template <typename T> struct GroupedWgrad {
  static void run(const void* a, const void* g, const int32_t* offsets, void* dw, int64_t n_experts, int64_t k_dim,
                  int64_t n_dim, cudaStream_t st) {
    if (n_experts == 0) return;
    dim3 grid(static_cast<unsigned>((n_dim + TILE - 1) / TILE), static_cast<unsigned>((k_dim + TILE - 1) / TILE),
              static_cast<unsigned>(n_experts));
    grouped_wgrad_kernel<T><<<grid, dim3(TILE, TILE), 0, st>>>(static_cast<const T*>(a), static_cast<const T*>(g),
                                                                offsets, static_cast<T*>(dw), k_dim, n_dim);
  }
};

}  // namespace

cudaError_t bmoe_gather_rows(const void* src, const int64_t* index, void* out, int64_t n_rows, int64_t d, int dtype,
                             cudaStream_t stream) {
  return by_dtype<GatherRows>(dtype, src, index, out, n_rows, d, stream);
}
cudaError_t bmoe_sum_slots(const void* grad_sorted, const int64_t* inverse, void* grad_x, int64_t n_tokens, int64_t k,
                           int64_t d, int dtype, cudaStream_t stream) {
  return by_dtype<SumSlots>(dtype, grad_sorted, inverse, grad_x, n_tokens, k, d, stream);
}
cudaError_t bmoe_combine(const void* out_sorted, const void* w, const int64_t* inverse, void* y, int64_t n_tokens,
                         int64_t k, int64_t d, int dtype, cudaStream_t stream) {
  return by_dtype<Combine>(dtype, out_sorted, w, inverse, y, n_tokens, k, d, stream);
}
cudaError_t bmoe_combine_backward(const void* grad_y, const void* out_sorted, const void* w, const int64_t* inverse,
                                  void* grad_out_sorted, void* grad_w, int64_t n_tokens, int64_t k, int64_t d, int dtype,
                                  cudaStream_t stream) {
  return by_dtype<CombineBackward>(dtype, grad_y, out_sorted, w, inverse, grad_out_sorted, grad_w, n_tokens, k, d,
                                   stream);
}
cudaError_t bmoe_grouped_gemm(const void* a, const void* b, void* c, const int32_t* tile_expert,
                              const int32_t* tile_start, const int32_t* tile_end, int64_t n_tiles, int64_t k_dim,
                              int64_t n_dim, int64_t sbe, int64_t sbi, int64_t sbj, int dtype, cudaStream_t stream) {
  return by_dtype<GroupedGemm>(dtype, a, b, c, tile_expert, tile_start, tile_end, n_tiles, k_dim, n_dim, sbe, sbi, sbj,
                               stream);
}
cudaError_t bmoe_grouped_wgrad(const void* a, const void* g, const int32_t* offsets, void* dw, int64_t n_experts,
                               int64_t k_dim, int64_t n_dim, int dtype, cudaStream_t stream) {
  return by_dtype<GroupedWgrad>(dtype, a, g, offsets, dw, n_experts, k_dim, n_dim, stream);
}
