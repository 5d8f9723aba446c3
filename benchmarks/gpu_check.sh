#!/usr/bin/env bash
# `make gpu-check` on any GPU machine, including a bare one without the venv or dict-gcide: builds the CUDA
# extension for this GPU only, then runs benchmarks/gpu_check.py under an 8-minute limit. Results go to
# $OUT (default benchmarks/gpu_out), log included. Env: PYTHON (default python3), BAYESMOE_GCIDE (the corpus
# file; default /usr/share/dictd/gcide.dict.dz, else sweeps/gpu_data/gcide.dict.dz when present).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/gpu_out}
export OUT
mkdir -p "$OUT"
export BAYESMOE_CACHE=${BAYESMOE_CACHE:-$PWD/sweeps/cache}
if [ -z "${BAYESMOE_GCIDE:-}" ] && [ ! -e /usr/share/dictd/gcide.dict.dz ] && [ -e sweeps/gpu_data/gcide.dict.dz ]; then
  export BAYESMOE_GCIDE=$PWD/sweeps/gpu_data/gcide.dict.dz
fi
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  export TORCH_CUDA_ARCH_LIST
fi
export MAX_JOBS=${MAX_JOBS:-8} PYTHONUNBUFFERED=1
timeout "${GPU_CHECK_TIMEOUT:-470}" "$PY" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/log.txt"
