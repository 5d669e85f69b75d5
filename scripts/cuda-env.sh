# Sourced by check-cuda.sh, gpu-bundle.sh and gpu-run.sh: NVIDIA's compiler
# from the Python package index (pinned to CUDA 13.0, which the cudarc under
# Candle 0.11 knows; the index's newest, 13.5, is newer than it knows), in a
# virtual environment kept outside the checkout and reused, put on PATH with
# the variables Candle's and this project's kernel builds read.
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
# The GPU generation kernels are compiled for: 90 is the H100's.
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# nvcc runs one file at a time unless told otherwise.
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
