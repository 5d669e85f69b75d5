#!/usr/bin/env bash
# Builds here, without a GPU, the lstm-candle numerics test binary with
# `--features cuda`, for a GPU machine that has the NVIDIA libraries but no
# Rust toolchain (the device machines lent to this project). It is linked
# against stub NVIDIA libraries made here (the right sonames, with empty
# functions for cudarc's names); where it runs, the loader finds the real ones.
# The stripped binary goes to gpu-bundle/ (ignored by git), for the device
# tool's `carry`. There, from the checkout's root:
#
#   mkdir -p "$(dirname BUILT_AT)" && ln -sfn "$PWD" BUILT_AT   # the fixtures' path
#   LSTM_CANDLE_TEST_DEVICE=cuda gpu-bundle/numerics --skip pytorch_logits_of_the_reference_model
#
# BUILT_AT is this checkout's path, which the test binary reads its fixtures
# from (printed at the end); the skipped test reads ../shared, which does not
# travel. Uses scripts/cuda-env.sh's compiler environment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
# The stubs: every function name cudarc declares for each library Candle links.
version=$(grep -A1 '^name = "cudarc"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" | head -1)
stubs=target/cuda-stubs
mkdir -p "$stubs"
for spec in cuda:driver:1 cublas:cublas:13 cublasLt:cublaslt:13 curand:curand:10 nvrtc:nvrtc:13; do
  IFS=: read -r lib module soversion <<<"$spec"
  grep -ohE 'fn (cu|nvrtc)[A-Za-z0-9_]*\(' "$cudarc/src/$module/sys/mod.rs" |
    sed -E 's/^fn (.*)\($/void \1(void) {}/' | sort -u > "$stubs/$lib.c"
  gcc -shared -fPIC -o "$stubs/lib$lib.so.$soversion" -Wl,-soname,"lib$lib.so.$soversion" "$stubs/$lib.c"
  ln -sf "lib$lib.so.$soversion" "$stubs/lib$lib.so"
done
ln -sf "$cuda/lib/libcudart.so.13" "$stubs/libcudart.so"
binary=$(LIBRARY_PATH="$PWD/$stubs" cargo test -p lstm-candle --features cuda --test numerics --no-run \
  --message-format=json-render-diagnostics | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
mkdir -p gpu-bundle
strip -o gpu-bundle/numerics "$binary"
ls -la gpu-bundle/numerics
echo "gpu-bundle: built at $PWD; carry gpu-bundle (and run it as the comment at the top of this script says)"
