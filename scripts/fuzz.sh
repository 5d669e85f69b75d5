#!/usr/bin/env bash
# Runs the fuzz targets (default: all) for SECONDS each (default 300), seeded from the small
# seeds in fuzz/seeds and the real collection in ../shared/data (read in place,
# never copied). Needs `cargo install cargo-fuzz` and a nightly toolchain.
# New crashes land in fuzz/artifacts/TARGET; copy each into
# fuzz/regressions/TARGET, where `cargo test` replays them.
# Usage: scripts/fuzz.sh [SECONDS] ["TARGET ..."]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
targets=${2:-kern esac tokens checkpoint}
shared=../../shared/data/essen
for target in $targets; do
  mkdir -p "corpus/$target"
  extra=()
  if [ "$target" = kern ]; then extra=("$shared/deutschl"); fi
  if [ "$target" = esac ]; then extra=("$shared/esac"); fi
  echo "== $target for ${seconds}s"
  cargo +nightly fuzz run -s none "$target" "corpus/$target" "seeds/$target" "${extra[@]}" \
    -- -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -15
  echo "corpus/$target: $(ls "corpus/$target" | wc -l) inputs"
done
