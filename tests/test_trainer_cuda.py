"""The CUDA dispatch: the kernels compile and link with nvcc and the torch binding compiles against torch's
headers (no GPU needed); on a GPU, outputs and every gradient match the pure-PyTorch reference."""
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from trainer.cuda_dispatch import CSRC, tile_schedule  # noqa: E402
from trainer.dispatch import sorted_dispatch  # noqa: E402

LAUNCHERS = ("bmoe_gather_rows", "bmoe_sum_slots", "bmoe_combine", "bmoe_combine_backward", "bmoe_grouped_gemm",
             "bmoe_grouped_wgrad")
HOST = r'''
#include "dispatch_kernels.h"
int main() {
  // Calls every launcher with an invalid dtype code: links the object and checks the C API's error path
  // (no GPU needed: dtype is validated before any launch).
  int bad = 0;
  bad += bmoe_gather_rows(nullptr, nullptr, nullptr, 0, 0, 9, 0) != cudaErrorInvalidValue;
  bad += bmoe_sum_slots(nullptr, nullptr, nullptr, 0, 1, 0, 9, 0) != cudaErrorInvalidValue;
  bad += bmoe_combine(nullptr, nullptr, nullptr, nullptr, 0, 1, 0, 9, 0) != cudaErrorInvalidValue;
  bad += bmoe_combine_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 1, 0, 9, 0)
         != cudaErrorInvalidValue;
  bad += bmoe_grouped_gemm(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 1, 1, 1, 1, 1, 9, 0)
         != cudaErrorInvalidValue;
  bad += bmoe_grouped_wgrad(nullptr, nullptr, nullptr, nullptr, 0, 1, 1, 9, 0) != cudaErrorInvalidValue;
  bad += bmoe_tile_rows(9) != 0;
  bad += bmoe_tile_rows(BMOE_BF16) != 64 || bmoe_tile_rows(BMOE_F16) != 64;   // tensor-core tiles
  bad += bmoe_tile_rows(BMOE_F32) != 16 || bmoe_tile_rows(BMOE_F64) != 16;
  return bad;
}
'''


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


def test_tile_schedule_covers_each_expert_group():
    counts = torch.tensor([0, 35, 16, 1, 0])
    expert, start, end, offsets = tile_schedule(counts)
    assert offsets.tolist() == [0, 0, 35, 51, 52, 52]
    assert list(zip(expert.tolist(), start.tolist(), end.tolist())) == [
        (1, 0, 16), (1, 16, 32), (1, 32, 35), (2, 35, 51), (3, 51, 52)]


@needs_nvcc
def test_kernels_compile_and_link_with_nvcc(tmp_path, binding_compile):
    # binding_compile: the torch binding's compile starts first and runs beside this one
    obj = tmp_path / "dispatch_kernels.o"
    res = subprocess.run(["nvcc", "-c", str(CSRC / "dispatch_kernels.cu"), "-o", str(obj), "-arch=sm_80",
                          "--Werror", "all-warnings", "-Xcompiler", "-Wall"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    for name in LAUNCHERS:
        assert f" T {name}(" in symbols, name
    assert "grouped_gemm_wmma_kernel<__nv_bfloat16>" in symbols     # tensor cores for 16-bit dtypes
    assert "grouped_wgrad_wmma_kernel<__half>" in symbols and "grouped_gemm_kernel<double>" in symbols
    host = tmp_path / "host.cu"
    host.write_text(HOST)
    exe = tmp_path / "host"
    res = subprocess.run(["nvcc", str(host), str(obj), "-I", str(CSRC), "-o", str(exe), "-arch=sm_80"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)   # no launch: runs without a GPU
    assert run.returncode == 0, f"{run.returncode} C API checks failed"


def _cuda_include() -> Path:
    """The CUDA toolkit's include directory, as nvcc itself reports it (nvcc may be a wrapper script)."""
    dry = subprocess.run(["nvcc", "--dryrun", "-c", "x.cu"], capture_output=True, text=True).stderr
    match = re.search(r'INCLUDES="-I([^"]+)"', dry)
    if match:
        return Path(match.group(1).strip())
    return Path(shutil.which("nvcc")).resolve().parent.parent / "include"


@pytest.fixture(scope="module")
def binding_compile():
    """Starts g++ -fsyntax-only on dispatch_binding.cpp against this torch's headers (include_paths()) and
    nvcc's CUDA headers, in the background so it overlaps the nvcc compile; None without torch's C++ headers.
    A CPU-only torch wheel ships the c10/cuda headers but not the generated cuda_cmake_macros.h, hence
    C10_CUDA_NO_CMAKE_CONFIGURE_FILE when that file is absent."""
    from torch.utils.cpp_extension import include_paths
    torch_inc = [Path(p) for p in include_paths()]
    if shutil.which("g++") is None or not (torch_inc[0] / "torch" / "csrc" / "utils" / "pybind.h").exists():
        return None
    cuda_inc = _cuda_include()
    cmd = ["g++", "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", str(CSRC),
           "-DTORCH_EXTENSION_NAME=bayesmoe_dispatch", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    for inc in [*torch_inc, cuda_inc, sysconfig.get_paths()["include"]]:
        cmd += ["-isystem", str(inc)]                 # warnings only from our own file
    if not (torch_inc[0] / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        cmd.append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    proc = subprocess.Popen([*cmd, str(CSRC / "dispatch_binding.cpp")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc, cuda_inc
    proc.kill()
    proc.communicate()


@needs_nvcc
def test_torch_binding_compiles_with_torch_headers(binding_compile):
    if binding_compile is None:
        pytest.skip("g++ or torch's C++ headers not installed")
    proc, cuda_inc = binding_compile
    assert (cuda_inc / "cuda_runtime.h").exists(), cuda_inc
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-4000:]


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("t, d, h, e, k", [(300, 64, 48, 8, 2), (1000, 32, 17, 64, 8), (5, 16, 16, 4, 1)])
def test_cuda_dispatch_matches_reference(dtype, tol, t, d, h, e, k):
    from trainer.cuda_dispatch import cuda_dispatch
    g = torch.Generator(device="cuda").manual_seed(0)
    dev = dict(device="cuda", dtype=dtype)
    x = torch.randn(t, d, generator=g, **dev).requires_grad_()
    logits = torch.randn(t, e, generator=g, device="cuda")
    logits[:, -1] = -1e9                                   # one expert receives no token
    w, idx = logits.softmax(-1).topk(k, dim=-1)
    w = w.to(dtype).requires_grad_()
    w_in = (torch.randn(e, d, 2 * h, generator=g, **dev) / d ** 0.5).requires_grad_()
    w_out = (torch.randn(e, h, d, generator=g, **dev) / h ** 0.5).requires_grad_()
    inputs = (x, w, w_in, w_out)
    out = cuda_dispatch(x, idx, w, w_in, w_out)
    ref_inputs = [v.detach().float().requires_grad_() for v in inputs]
    ref = sorted_dispatch(ref_inputs[0], idx, *ref_inputs[1:])
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(out, inputs, grad.to(dtype))
    want = torch.autograd.grad(ref, ref_inputs, grad)
    for a, b, name in zip(got, want, ("x", "weight", "w_in", "w_out")):
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()), msg=name)


@pytest.mark.gpu
@needs_gpu
def test_cuda_dispatch_gradcheck_and_second_backward():
    """float64 through the same kernels: gradcheck, and a retained graph's second backward equals the first."""
    from trainer.cuda_dispatch import cuda_dispatch
    g = torch.Generator(device="cuda").manual_seed(1)
    dev = dict(device="cuda", dtype=torch.float64)
    x = torch.randn(12, 8, generator=g, **dev).requires_grad_()
    w, idx = torch.randn(12, 4, generator=g, device="cuda").softmax(-1).topk(2, dim=-1)
    w = w.double().requires_grad_()
    w_in = torch.randn(4, 8, 16, generator=g, **dev).requires_grad_()
    w_out = torch.randn(4, 8, 8, generator=g, **dev).requires_grad_()
    inputs = (x, w, w_in, w_out)
    assert torch.autograd.gradcheck(lambda *a: cuda_dispatch(a[0], idx, *a[1:]), inputs)
    y = cuda_dispatch(x, idx, w, w_in, w_out)
    grad = torch.randn_like(y)
    first = torch.autograd.grad(y, inputs, grad, retain_graph=True)
    second = torch.autograd.grad(y, inputs, grad)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_cuda_dispatch_runs_on_the_tensors_device():
    """Tensors on cuda:1 while cuda:0 is current: the bindings' CUDAGuard launches on cuda:1."""
    from trainer.cuda_dispatch import cuda_dispatch
    torch.cuda.set_device(0)
    x = torch.randn(64, 16, device="cuda:1")
    w, idx = torch.randn(64, 4, device="cuda:1").softmax(-1).topk(2, dim=-1)
    w_in, w_out = torch.randn(4, 16, 32, device="cuda:1"), torch.randn(4, 16, 16, device="cuda:1")
    out = cuda_dispatch(x, idx, w, w_in, w_out)
    assert out.device == torch.device("cuda:1")
    torch.testing.assert_close(out, sorted_dispatch(x, idx, w, w_in, w_out), rtol=1e-4, atol=1e-4)
