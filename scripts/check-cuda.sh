#!/usr/bin/env bash
# Builds the `cuda` feature on a machine without a GPU: NVIDIA's compiler from
# the Python package index (scripts/cuda-env.sh), then clippy over every target
# with `--features cuda`. Clippy runs the build scripts, so nvcc compiles
# Candle's kernels and ours to PTX. The libraries are not built as well: that
# took CI 2.5 minutes and added only Rust's code generation for the host. Binaries are not linked: that needs the driver
# library (libcuda), which only a machine with an NVIDIA driver has.
#
#   scripts/check-cuda.sh            # venv in ~/.cache/esac-melody/cuda-venv
#   CUDA_COMPUTE_CAP=80 scripts/check-cuda.sh
#   ESAC_MELODY_CUDA_TARGET=target scripts/check-cuda.sh   # as CI runs it
#
# CI runs it after the CPU builds, in their target folder: cargo keeps both
# feature sets side by side, so only Candle and what uses it are checked again.
# Most of the time is nvcc compiling candle-kernels' kernels (README, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
# Its own target folder: the CUDA build of candle is kept apart from the CPU one.
export CARGO_TARGET_DIR=${ESAC_MELODY_CUDA_TARGET:-target/cuda}
nvcc --version | tail -1
cargo clippy --workspace --all-targets --features xtask/cuda -- -D warnings
echo "check-cuda: the cuda feature type-checks and is clippy clean, and its kernels compile"
