#!/usr/bin/env bash
# Builds the `cuda` feature on a machine without a GPU: NVIDIA's compiler from
# the Python package index (scripts/cuda-env.sh), then clippy over every target
# and a build of the library crates with `--features cuda`. Binaries are not linked: that needs the driver
# library (libcuda), which only a machine with an NVIDIA driver has.
#
#   scripts/check-cuda.sh            # venv in ~/.cache/esac-melody/cuda-venv
#   CUDA_COMPUTE_CAP=80 scripts/check-cuda.sh
#   ESAC_MELODY_CUDA_TARGET=target scripts/check-cuda.sh   # as CI runs it
#
# CI runs it after the CPU builds, in their target folder: cargo keeps both
# feature sets side by side, so only Candle and what uses it are built again.
# Most of the time is nvcc compiling candle-kernels' kernels (README, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
# Its own target folder: the CUDA build of candle is kept apart from the CPU one.
export CARGO_TARGET_DIR=${ESAC_MELODY_CUDA_TARGET:-target/cuda}
nvcc --version | tail -1
cargo clippy --workspace --all-targets --features xtask/cuda -- -D warnings
cargo build --workspace --lib --features xtask/cuda
echo "check-cuda: the cuda feature type-checks, is clippy clean and its libraries build"
