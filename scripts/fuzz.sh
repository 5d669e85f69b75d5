#!/usr/bin/env bash
# Runs the fuzz targets (default: all) for SECONDS each (default 300), seeded from the small
# seeds in fuzz/seeds and the real collection in ../shared/data (read in place,
# never copied into the repo), with fuzz/dictionaries/TARGET.dict where there is
# one. Needs `cargo install cargo-fuzz` and a nightly toolchain.
# New crashes land in fuzz/artifacts/TARGET; copy each into
# fuzz/regressions/TARGET, where `cargo test` replays them.
#
# Each run's libFuzzer log, every line prefixed with the seconds elapsed, is kept
# in fuzz/logs/TARGET.log, and the script ends each target with when edge
# coverage (`cov`) last grew: that is the "found nothing new" measure that
# docs/fuzzing.md reports. For `checkpoint`, whose live count also grows with
# std's random hash seeds, the measure is the repeatable one that
# fuzz-coverage-diff.sh gives from the half-time copy (see below).
# Usage: scripts/fuzz.sh [SECONDS] ["TARGET ..."]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
targets=${2:-kern esac tokens checkpoint}
shared=../../shared/data/essen
mkdir -p logs

# An EsAC file holds hundreds of songs, and a mutated whole file runs at about a
# hundred executions a second. One song per seed (split at the blank line
# between songs) and a length cap keep the reader fast under the fuzzer.
esac_song_seeds() {
  local out=generated-seeds/esac
  if [ ! -d "$out" ]; then
    mkdir -p "$out"
    find "$shared/esac" -name '*.sm' -print0 | sort -z | while IFS= read -r -d '' file; do
      LC_ALL=C awk -v out="$out" -v stem="$(basename "$file" .sm)" 'BEGIN { RS = "\r?\n\r?\n" }
        NF { n++; name = sprintf("%s/%s-%04d.sm", out, stem, n); printf "%s\r\n", $0 > name; close(name) }' "$file"
    done
  fi
  echo "$out"
}

# The checkpoint seed's systematic variants (scripts/checkpoint_mutants.py):
# headers of many tensors, every escape, number form and wrong type, which
# random mutation of the one tiny seed reaches late or never (docs/fuzzing.md,
# round 11).
checkpoint_variant_seeds() {
  local out=generated-seeds/checkpoint
  # Written again when the script that writes them has changed.
  if [ ! -d "$out" ] || [ ../scripts/checkpoint_mutants.py -nt "$out" ]; then
    rm -rf "$out"
    python3 ../scripts/checkpoint_mutants.py "$out" >&2
  fi
  echo "$out"
}

for target in $targets; do
  # Machines are not kept from one session to the next, and with them went the
  # working corpora; a target whose corpus took hours to grow keeps a minimized
  # copy in git (docs/fuzzing.md says when each was taken), which a new
  # machine starts from.
  mkdir -p "corpus/$target"
  if [ -z "$(ls -A "corpus/$target")" ] && [ -f "kept-corpora/$target.tar.gz" ]; then
    tar -xzf "kept-corpora/$target.tar.gz" -C "corpus/$target"
  fi
  extra=()
  options=()
  if [ "$target" = kern ]; then extra=("$shared/deutschl"); fi
  if [ "$target" = esac ]; then extra=("$(esac_song_seeds)"); options=(-max_len=8192); fi
  if [ "$target" = checkpoint ]; then extra=("$(checkpoint_variant_seeds)"); fi
  # The readers compare short words inline, as 1- and 2-byte integers, from
  # which libFuzzer learns nothing; a dictionary hands it those words.
  if [ -f "dictionaries/$target.dict" ]; then options+=(-dict="$PWD/dictionaries/$target.dict"); fi
  echo "== $target for ${seconds}s"
  # The corpus at half time: scripts/fuzz-coverage-diff.sh TARGET
  # logs/TARGET.half corpus/TARGET then tells, repeatably, whether the second
  # half reached anything new (the `checkpoint` target's live count cannot).
  rm -rf "logs/$target.half"
  (sleep $((seconds / 2)) && cp -r "corpus/$target" "logs/$target.half") &
  half_copy=$!
  start=$SECONDS
  cargo +nightly fuzz run -s none "$target" "corpus/$target" "seeds/$target" "${extra[@]}" \
    -- -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 "${options[@]}" 2>&1 |
    while IFS= read -r line; do printf '%d %s\n' $((SECONDS - start)) "$line"; done >"logs/$target.log" || true
  # A run cut short (a crash) ends before half time: no copy then.
  kill "$half_copy" 2>/dev/null || true
  wait "$half_copy" 2>/dev/null || true
  tail -12 "logs/$target.log"
  # Lines look like "T #EXECS NEW cov: C ft: F ...": report when C last grew.
  awk '$2 ~ /^#[0-9]+$/ && $4 == "cov:" {
         if ($5 + 0 > cov) { cov = $5 + 0; at = $1; execs = substr($2, 2) }
         last = $1; ft = $7 }
       END { printf "edge coverage %d, features %s; last new edge at %ds (execution %s) of %ds\n",
                    cov, ft, at, execs, last }' "logs/$target.log"
  echo "corpus/$target: $(ls "corpus/$target" | wc -l) inputs"
  if grep -q 'SUMMARY\|deadly signal\|panicked' "logs/$target.log"; then
    echo "$target: crash, see fuzz/artifacts/$target" >&2
  fi
done
