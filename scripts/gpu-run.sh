#!/usr/bin/env bash
# The prepared run for a machine with an NVIDIA GPU, in one go: build with
# `--features cuda`, run lstm-candle's numeric tests on the GPU against the CPU
# (LSTM_CANDLE_TEST_DEVICE=cuda), then `bench train` (128x1, 256x2, 512x3 at
# batch 64 and 512, fused and step by step) and `bench sample` on the GPU.
# Writes the GPU's name, the test log and the JSON lines under $OUT.
#
#   OUT=gpu-figures scripts/gpu-run.sh
#
# Needs the NVIDIA driver and nvcc: the CUDA toolkit, or else the environment
# scripts/cuda-env.sh makes (which needs the package index).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-target/gpu-run}
mkdir -p "$out"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$out/gpu.csv"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap}
if ! command -v nvcc >/dev/null; then
  source scripts/cuda-env.sh
  export LD_LIBRARY_PATH="$cuda/lib:${LD_LIBRARY_PATH:-}"
fi
export CARGO_TARGET_DIR=${ESAC_MELODY_CUDA_TARGET:-target/cuda}
LSTM_CANDLE_TEST_DEVICE=cuda cargo test --release -p lstm-candle --features cuda --test numerics 2>&1 | tee "$out/numerics.log"
xtask() { cargo run --release -q -p xtask --features cuda -- "$@"; }
for batch in 64 512; do
  xtask bench train --device cuda --size all --batch "$batch" --threads 1 --steps 20 | tee -a "$out/train.jsonl"
done
xtask bench sample --device cuda | tee "$out/sample.jsonl"
echo "gpu-run: figures in $out"
