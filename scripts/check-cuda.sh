#!/usr/bin/env bash
# Builds the `cuda` feature on a machine without a GPU: NVIDIA's compiler from
# the Python package index (pinned to CUDA 13.0, which the cudarc under
# Candle 0.11 knows), in a virtual environment kept outside the checkout and
# reused; then clippy over every target and a build of the library crates
# with `--features cuda`. Binaries are not linked: that needs the driver
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
venv=${ESAC_MELODY_CUDA_VENV:-$HOME/.cache/esac-melody/cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  # Debian's python3 makes virtual environments only with python3-venv.
  python3 -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    apt-get install -y -q python3-venv >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
    python3 -m venv "$venv"
  }
fi
"$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88" \
  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85"
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
export PATH="$cuda/bin:$PATH" CUDA_ROOT="$cuda" CUDA_PATH="$cuda"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# nvcc runs one file at a time unless told otherwise.
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
# Its own target folder: the CUDA build of candle is kept apart from the CPU one.
export CARGO_TARGET_DIR=${ESAC_MELODY_CUDA_TARGET:-target/cuda}
nvcc --version | tail -1
cargo clippy --workspace --all-targets --features xtask/cuda -- -D warnings
cargo build --workspace --lib --features xtask/cuda
echo "check-cuda: the cuda feature type-checks, is clippy clean and its libraries build"
