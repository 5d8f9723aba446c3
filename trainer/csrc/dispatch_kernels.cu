// MoE dispatch kernels: permute (gather rows), its deterministic backward, weighted un-permute/combine and
// its backward, a grouped GEMM over expert row tiles and the grouped weight-gradient GEMM.
// float16 / bfloat16 GEMMs run on tensor cores (WMMA 16x16x16, float32 accumulation, 64 x 64 block tiles,
// needs sm_80+); float32 / float64 GEMMs are 16 x 16 SIMT tiles. Accumulation is in float32 (float64 for
// float64); nothing uses atomics, so results are deterministic.
#include "dispatch_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

namespace {

constexpr int TILE = 16;                    // SIMT tile (float32 / float64)
constexpr int BM = 64, BN = 64, BK = 32;    // tensor-core block tile (float16 / bfloat16)
constexpr int PAD16 = 8, PADF = 4;          // shared-memory row padding (WMMA ldm: 8 x 16-bit, 4 x float)
constexpr int WMMA_THREADS = 128;           // 4 warps, each a 32 x 32 quarter of the block tile

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ double to_f(double v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(typename Acc<T>::type v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_f<double>(double v) { return v; }
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
    typename Acc<T>::type acc = 0;
    for (int64_t j = 0; j < k; ++j) acc += to_f(g[inverse[t * k + j] * d + c]);
    gx[i] = from_f<T>(acc);
  }
}

template <typename T>
__global__ void combine_kernel(const T* out, const T* w, const int64_t* inverse, T* y, int64_t n_tokens, int64_t k,
                               int64_t d) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_tokens * d; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t t = i / d, c = i % d;
    typename Acc<T>::type acc = 0;
    for (int64_t j = 0; j < k; ++j) acc += to_f(w[t * k + j]) * to_f(out[inverse[t * k + j] * d + c]);
    y[i] = from_f<T>(acc);
  }
}

// One block per slot s: writes the slot's row of grad_out_sorted and reduces its weight gradient.
template <typename T>
__global__ void combine_backward_kernel(const T* gy, const T* out, const T* w, const int64_t* inverse, T* g_out,
                                        T* g_w, int64_t k, int64_t d) {
  using A = typename Acc<T>::type;
  __shared__ A partial[128];
  int64_t s = blockIdx.x, t = s / k, row = inverse[s];
  A ws = to_f(w[s]), acc = 0;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    A g = to_f(gy[t * d + c]);
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

// SIMT grouped GEMM (float32 / float64): one block per (row tile of <= TILE rows, TILE output columns).
template <typename T>
__global__ void grouped_gemm_kernel(const T* a, const T* b, T* c, const int32_t* tile_expert, const int32_t* tile_start,
                                    const int32_t* tile_end, int64_t k_dim, int64_t n_dim, int64_t sbe, int64_t sbi,
                                    int64_t sbj) {
  using A = typename Acc<T>::type;
  __shared__ A as[TILE][TILE + 1];
  __shared__ A bs[TILE][TILE + 1];
  const int tile = blockIdx.x;
  const int64_t e = tile_expert[tile], r1 = tile_end[tile];
  const int64_t row = tile_start[tile] + threadIdx.y, col = (int64_t)blockIdx.y * TILE + threadIdx.x;
  const T* be = b + e * sbe;
  A acc = 0;
  for (int64_t k0 = 0; k0 < k_dim; k0 += TILE) {
    int64_t ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (row < r1 && ka < k_dim) ? to_f(a[row * k_dim + ka]) : A(0);
    bs[threadIdx.y][threadIdx.x] = (kb < k_dim && col < n_dim) ? to_f(be[kb * sbi + col * sbj]) : A(0);
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
  using A = typename Acc<T>::type;
  __shared__ A as[TILE][TILE + 1];
  __shared__ A gs[TILE][TILE + 1];
  const int64_t e = blockIdx.z, r_begin = offsets[e], r_end = offsets[e + 1];
  const int64_t i0 = (int64_t)blockIdx.y * TILE, j0 = (int64_t)blockIdx.x * TILE;
  A acc = 0;
  for (int64_t r0 = r_begin; r0 < r_end; r0 += TILE) {
    int64_t r = r0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (r < r_end && i0 + threadIdx.x < k_dim) ? to_f(a[r * k_dim + i0 + threadIdx.x]) : A(0);
    gs[threadIdx.y][threadIdx.x] = (r < r_end && j0 + threadIdx.x < n_dim) ? to_f(g[r * n_dim + j0 + threadIdx.x]) : A(0);
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < TILE; ++rr) acc += as[rr][threadIdx.y] * gs[rr][threadIdx.x];
    __syncthreads();
  }
  int64_t i = i0 + threadIdx.y, j = j0 + threadIdx.x;
  if (i < k_dim && j < n_dim) dw[(e * k_dim + i) * n_dim + j] = from_f<T>(acc);
}

// Tensor-core grouped GEMM (float16 / bfloat16): one block of 4 warps per (row tile of <= BM rows, BN output
// columns); operands staged in shared memory (zero-padded at the edges), warp w computes the 32 x 32 quarter
// (w / 2, w % 2) as 2 x 2 WMMA fragments, float32 accumulators written back through shared memory.
template <typename T>
__global__ void __launch_bounds__(WMMA_THREADS)
grouped_gemm_wmma_kernel(const T* a, const T* b, T* c, const int32_t* tile_expert, const int32_t* tile_start,
                         const int32_t* tile_end, int64_t k_dim, int64_t n_dim, int64_t sbe, int64_t sbi, int64_t sbj) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  __shared__ __align__(32) unsigned short as_raw[BM * (BK + PAD16)];
  __shared__ __align__(32) unsigned short bs_raw[BK * (BN + PAD16)];
  __shared__ __align__(32) float cs[BM * (BN + PADF)];
  T* as = reinterpret_cast<T*>(as_raw);
  T* bs = reinterpret_cast<T*>(bs_raw);
  const int tile = blockIdx.x;
  const int64_t e = tile_expert[tile], r0 = tile_start[tile], r1 = tile_end[tile];
  const int64_t n0 = (int64_t)blockIdx.y * BN;
  const T* be = b + e * sbe;
  const int warp = threadIdx.x / 32, wr = (warp / 2) * 32, wc = (warp % 2) * 32;
  const T zero = from_f<T>(0.f);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  for (int64_t k0 = 0; k0 < k_dim; k0 += BK) {
    for (int idx = threadIdx.x; idx < BM * BK; idx += WMMA_THREADS) {
      int r = idx / BK, kk = idx % BK;
      int64_t row = r0 + r, kc = k0 + kk;
      as[r * (BK + PAD16) + kk] = (row < r1 && kc < k_dim) ? a[row * k_dim + kc] : zero;
    }
    for (int idx = threadIdx.x; idx < BK * BN; idx += WMMA_THREADS) {
      int kk = idx / BN, cc = idx % BN;
      int64_t kr = k0 + kk, col = n0 + cc;
      bs[kk * (BN + PAD16) + cc] = (kr < k_dim && col < n_dim) ? be[kr * sbi + col * sbj] : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], as + (wr + 16 * i) * (BK + PAD16) + kk, BK + PAD16);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], bs + kk * (BN + PAD16) + wc + 16 * j, BN + PAD16);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(cs + (wr + 16 * i) * (BN + PADF) + wc + 16 * j, acc[i][j], BN + PADF, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < BM * BN; idx += WMMA_THREADS) {
    int r = idx / BN, cc = idx % BN;
    int64_t row = r0 + r, col = n0 + cc;
    if (row < r1 && col < n_dim) c[row * n_dim + col] = from_f<T>(cs[r * (BN + PADF) + cc]);
  }
#else
  __trap();
#endif
}

// Tensor-core weight gradient (float16 / bfloat16): block (j, i, e) computes dW[e][i0:i0+BM, j0:j0+BN] =
// A_e^T G_e over the expert's rows in steps of BK; A's rows are staged as [BK][BM] (A^T in column-major).
template <typename T>
__global__ void __launch_bounds__(WMMA_THREADS)
grouped_wgrad_wmma_kernel(const T* a, const T* g, const int32_t* offsets, T* dw, int64_t k_dim, int64_t n_dim) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  __shared__ __align__(32) unsigned short at_raw[BK * (BM + PAD16)];
  __shared__ __align__(32) unsigned short gs_raw[BK * (BN + PAD16)];
  __shared__ __align__(32) float cs[BM * (BN + PADF)];
  T* at = reinterpret_cast<T*>(at_raw);
  T* gs = reinterpret_cast<T*>(gs_raw);
  const int64_t e = blockIdx.z, r_begin = offsets[e], r_end = offsets[e + 1];
  const int64_t i0 = (int64_t)blockIdx.y * BM, j0 = (int64_t)blockIdx.x * BN;
  const int warp = threadIdx.x / 32, wr = (warp / 2) * 32, wc = (warp % 2) * 32;
  const T zero = from_f<T>(0.f);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  for (int64_t rb = r_begin; rb < r_end; rb += BK) {
    for (int idx = threadIdx.x; idx < BK * BM; idx += WMMA_THREADS) {
      int kk = idx / BM, ii = idx % BM;
      int64_t r = rb + kk, i = i0 + ii;
      at[kk * (BM + PAD16) + ii] = (r < r_end && i < k_dim) ? a[r * k_dim + i] : zero;
    }
    for (int idx = threadIdx.x; idx < BK * BN; idx += WMMA_THREADS) {
      int kk = idx / BN, jj = idx % BN;
      int64_t r = rb + kk, j = j0 + jj;
      gs[kk * (BN + PAD16) + jj] = (r < r_end && j < n_dim) ? g[r * n_dim + j] : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], at + kk * (BM + PAD16) + wr + 16 * i, BM + PAD16);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], gs + kk * (BN + PAD16) + wc + 16 * j, BN + PAD16);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(cs + (wr + 16 * i) * (BN + PADF) + wc + 16 * j, acc[i][j], BN + PADF, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < BM * BN; idx += WMMA_THREADS) {
    int ii = idx / BN, jj = idx % BN;
    int64_t i = i0 + ii, j = j0 + jj;
    if (i < k_dim && j < n_dim) dw[(e * k_dim + i) * n_dim + j] = from_f<T>(cs[ii * (BN + PADF) + jj]);
  }
#else
  __trap();
#endif
}

template <typename T> constexpr bool kTensorCore = false;
template <> constexpr bool kTensorCore<__half> = true;
template <> constexpr bool kTensorCore<__nv_bfloat16> = true;

template <template <typename> class Launch, typename... Args>
cudaError_t by_dtype(int dtype, Args... args) {
  switch (dtype) {
    case BMOE_F32: Launch<float>::run(args...); break;
    case BMOE_F16: Launch<__half>::run(args...); break;
    case BMOE_BF16: Launch<__nv_bfloat16>::run(args...); break;
    case BMOE_F64: Launch<double>::run(args...); break;
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
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* pc = static_cast<T*>(c);
    if constexpr (kTensorCore<T>) {
      dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>((n_dim + BN - 1) / BN));
      grouped_gemm_wmma_kernel<T><<<grid, WMMA_THREADS, 0, st>>>(pa, pb, pc, te, ts, tend, k_dim, n_dim, sbe, sbi, sbj);
    } else {
      dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>((n_dim + TILE - 1) / TILE));
      grouped_gemm_kernel<T><<<grid, dim3(TILE, TILE), 0, st>>>(pa, pb, pc, te, ts, tend, k_dim, n_dim, sbe, sbi, sbj);
    }
  }
};
template <typename T> struct GroupedWgrad {
  static void run(const void* a, const void* g, const int32_t* offsets, void* dw, int64_t n_experts, int64_t k_dim,
                  int64_t n_dim, cudaStream_t st) {
    if (n_experts == 0) return;
    const T* pa = static_cast<const T*>(a);
    const T* pg = static_cast<const T*>(g);
    T* pw = static_cast<T*>(dw);
    if constexpr (kTensorCore<T>) {
      dim3 grid(static_cast<unsigned>((n_dim + BN - 1) / BN), static_cast<unsigned>((k_dim + BM - 1) / BM),
                static_cast<unsigned>(n_experts));
      grouped_wgrad_wmma_kernel<T><<<grid, WMMA_THREADS, 0, st>>>(pa, pg, offsets, pw, k_dim, n_dim);
    } else {
      dim3 grid(static_cast<unsigned>((n_dim + TILE - 1) / TILE), static_cast<unsigned>((k_dim + TILE - 1) / TILE),
                static_cast<unsigned>(n_experts));
      grouped_wgrad_kernel<T><<<grid, dim3(TILE, TILE), 0, st>>>(pa, pg, offsets, pw, k_dim, n_dim);
    }
  }
};

}  // namespace

int bmoe_tile_rows(int dtype) {
  switch (dtype) {
    case BMOE_F16: case BMOE_BF16: return BM;
    case BMOE_F32: case BMOE_F64: return TILE;
    default: return 0;
  }
}

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
