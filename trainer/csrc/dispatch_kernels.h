// C-style host API of the MoE dispatch kernels (no torch types): pointers, sizes, a dtype code and a stream.
// dtype: 0 = float32, 1 = float16, 2 = bfloat16, 3 = float64. Every launcher returns the launch's cudaError_t
// (cudaErrorInvalidValue for an unknown dtype code, checked before any launch).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

enum BmoeDtype { BMOE_F32 = 0, BMOE_F16 = 1, BMOE_BF16 = 2, BMOE_F64 = 3 };

// Most rows of one grouped-GEMM tile for this dtype (64 on tensor cores for float16 / bfloat16, 16 for the
// float32 / float64 SIMT kernel); 0 for an unknown dtype. Tile schedules passed to bmoe_grouped_gemm must use it.
int bmoe_tile_rows(int dtype);

// out[i, :] = src[index[i], :] for i < n_rows; rows have d elements.
cudaError_t bmoe_gather_rows(const void* src, const int64_t* index, void* out, int64_t n_rows, int64_t d,
                             int dtype, cudaStream_t stream);
// grad_x[t, :] = sum_j grad_sorted[inverse[t*k + j], :]  (backward of the permute; no atomics).
cudaError_t bmoe_sum_slots(const void* grad_sorted, const int64_t* inverse, void* grad_x, int64_t n_tokens,
                           int64_t k, int64_t d, int dtype, cudaStream_t stream);
// y[t, :] = sum_j w[t*k + j] * out_sorted[inverse[t*k + j], :]  (un-permute and weighted combine).
cudaError_t bmoe_combine(const void* out_sorted, const void* w, const int64_t* inverse, void* y, int64_t n_tokens,
                         int64_t k, int64_t d, int dtype, cudaStream_t stream);
// grad_out_sorted[inverse[s], :] = w[s] * grad_y[s / k, :];  grad_w[s] = <grad_y[s / k, :], out_sorted[inverse[s], :]>.
cudaError_t bmoe_combine_backward(const void* grad_y, const void* out_sorted, const void* w, const int64_t* inverse,
                                  void* grad_out_sorted, void* grad_w, int64_t n_tokens, int64_t k, int64_t d,
                                  int dtype, cudaStream_t stream);
// Grouped GEMM over row tiles: for tile t (rows tile_start[t] .. tile_end[t]-1, at most bmoe_tile_rows, of expert
// tile_expert[t]): C[r, :] = A[r, :] @ B_e with B_e(i, j) = B[e*sbe + i*sbi + j*sbj]; A [R, K], C [R, N].
cudaError_t bmoe_grouped_gemm(const void* a, const void* b, void* c, const int32_t* tile_expert,
                              const int32_t* tile_start, const int32_t* tile_end, int64_t n_tiles, int64_t k_dim,
                              int64_t n_dim, int64_t sbe, int64_t sbi, int64_t sbj, int dtype, cudaStream_t stream);
// Weight gradient: dW[e] = A[offsets[e]:offsets[e+1]]^T @ G[offsets[e]:offsets[e+1]]; A [R, K], G [R, N],
// dW [E, K, N] contiguous (zero for an expert without rows).
cudaError_t bmoe_grouped_wgrad(const void* a, const void* g, const int32_t* offsets, void* dw, int64_t n_experts,
                               int64_t k_dim, int64_t n_dim, int dtype, cudaStream_t stream);
