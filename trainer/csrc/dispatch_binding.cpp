// torch bindings of the dispatch kernels (dispatch_kernels.h): checks, device guard, allocation, current stream.
// Narrow includes instead of <torch/extension.h> (which pulls in the whole C++ frontend): the tensor type,
// the two factories used, the device guard and current CUDA stream (c10, so no cuBLAS/cuSPARSE headers are
// needed) and torch's pybind11 type casters for at::Tensor. Every binding first makes its first tensor's
// device current (CUDAGuard), so tensors on cuda:1 are allocated and launched on cuda:1's current stream.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/utils/pybind.h>

#include <vector>

#include "dispatch_kernels.h"

namespace {

int dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return BMOE_F32;
    case at::kHalf: return BMOE_F16;
    case at::kBFloat16: return BMOE_BF16;
    case at::kDouble: return BMOE_F64;
    default:
      TORCH_CHECK(false, "dispatch kernels support float32, float16, bfloat16 and float64, got ", t.scalar_type());
  }
}

void check(const at::Tensor& t, const char* name, const at::Tensor& first) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.device() == first.device(), name, " is on ", t.device(), ", not ", first.device());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void ok(cudaError_t err) { TORCH_CHECK(err == cudaSuccess, "dispatch kernel failed: ", cudaGetErrorString(err)); }

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

at::Tensor gather_rows(at::Tensor src, at::Tensor index) {
  check(src, "src", src); check(index, "index", src);
  const c10::cuda::CUDAGuard guard(src.device());
  auto out = at::empty({index.size(0), src.size(1)}, src.options());
  ok(bmoe_gather_rows(src.data_ptr(), index.data_ptr<int64_t>(), out.data_ptr(), index.size(0), src.size(1),
                      dtype_code(src), stream()));
  return out;
}

at::Tensor sum_slots(at::Tensor grad_sorted, at::Tensor inverse, int64_t k) {
  check(grad_sorted, "grad_sorted", grad_sorted); check(inverse, "inverse", grad_sorted);
  const c10::cuda::CUDAGuard guard(grad_sorted.device());
  auto gx = at::empty({inverse.size(0) / k, grad_sorted.size(1)}, grad_sorted.options());
  ok(bmoe_sum_slots(grad_sorted.data_ptr(), inverse.data_ptr<int64_t>(), gx.data_ptr(), gx.size(0), k,
                    grad_sorted.size(1), dtype_code(grad_sorted), stream()));
  return gx;
}

at::Tensor combine(at::Tensor out_sorted, at::Tensor weight, at::Tensor inverse) {
  check(out_sorted, "out_sorted", out_sorted); check(weight, "weight", out_sorted);
  check(inverse, "inverse", out_sorted);
  const c10::cuda::CUDAGuard guard(out_sorted.device());
  TORCH_CHECK(weight.scalar_type() == out_sorted.scalar_type(), "weight and out_sorted dtypes differ");
  auto y = at::empty({weight.size(0), out_sorted.size(1)}, out_sorted.options());
  ok(bmoe_combine(out_sorted.data_ptr(), weight.data_ptr(), inverse.data_ptr<int64_t>(), y.data_ptr(),
                  weight.size(0), weight.size(1), out_sorted.size(1), dtype_code(out_sorted), stream()));
  return y;
}

std::vector<at::Tensor> combine_backward(at::Tensor grad_y, at::Tensor out_sorted, at::Tensor weight,
                                            at::Tensor inverse) {
  check(grad_y, "grad_y", grad_y); check(out_sorted, "out_sorted", grad_y); check(weight, "weight", grad_y);
  check(inverse, "inverse", grad_y);
  const c10::cuda::CUDAGuard guard(grad_y.device());
  auto g_out = at::empty_like(out_sorted);
  auto g_w = at::empty_like(weight);
  ok(bmoe_combine_backward(grad_y.data_ptr(), out_sorted.data_ptr(), weight.data_ptr(), inverse.data_ptr<int64_t>(),
                           g_out.data_ptr(), g_w.data_ptr(), weight.size(0), weight.size(1), out_sorted.size(1),
                           dtype_code(out_sorted), stream()));
  return {g_out, g_w};
}

// c = grouped (a @ w[e]) per tile; transpose_w uses w[e]^T (w is [E, K, N] contiguous).
at::Tensor grouped_mm(at::Tensor a, at::Tensor w, at::Tensor tile_expert, at::Tensor tile_start,
                         at::Tensor tile_end, bool transpose_w) {
  check(a, "a", a); check(w, "w", a); check(tile_expert, "tile_expert", a); check(tile_start, "tile_start", a);
  check(tile_end, "tile_end", a);
  const c10::cuda::CUDAGuard guard(a.device());
  TORCH_CHECK(a.scalar_type() == w.scalar_type(), "a and w dtypes differ");
  const int64_t kw = w.size(1), nw = w.size(2);
  const int64_t k_dim = transpose_w ? nw : kw, n_dim = transpose_w ? kw : nw;
  TORCH_CHECK(a.size(1) == k_dim, "a has ", a.size(1), " columns, expected ", k_dim);
  auto c = at::empty({a.size(0), n_dim}, a.options());
  ok(bmoe_grouped_gemm(a.data_ptr(), w.data_ptr(), c.data_ptr(), tile_expert.data_ptr<int32_t>(),
                       tile_start.data_ptr<int32_t>(), tile_end.data_ptr<int32_t>(), tile_expert.size(0), k_dim, n_dim,
                       kw * nw, transpose_w ? 1 : nw, transpose_w ? nw : 1, dtype_code(a), stream()));
  return c;
}

at::Tensor grouped_wgrad(at::Tensor a, at::Tensor g, at::Tensor offsets) {
  check(a, "a", a); check(g, "g", a); check(offsets, "offsets", a);
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t n_experts = offsets.size(0) - 1;
  auto dw = at::empty({n_experts, a.size(1), g.size(1)}, a.options());
  ok(bmoe_grouped_wgrad(a.data_ptr(), g.data_ptr(), offsets.data_ptr<int32_t>(), dw.data_ptr(), n_experts, a.size(1),
                        g.size(1), dtype_code(a), stream()));
  return dw;
}

int tile_rows(at::Tensor like) { return bmoe_tile_rows(dtype_code(like)); }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tile_rows", &tile_rows, "most rows of one grouped-GEMM tile for tensors of like's dtype");
  m.def("gather_rows", &gather_rows, "out[i] = src[index[i]]");
  m.def("sum_slots", &sum_slots, "grad_x[t] = sum_j grad_sorted[inverse[t*k+j]]");
  m.def("combine", &combine, "y[t] = sum_j w[t,j] out_sorted[inverse[t*k+j]]");
  m.def("combine_backward", &combine_backward, "gradients of combine");
  m.def("grouped_mm", &grouped_mm, "grouped GEMM over expert row tiles");
  m.def("grouped_wgrad", &grouped_wgrad, "per-expert A^T G");
}
