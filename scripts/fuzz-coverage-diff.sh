#!/usr/bin/env bash
# Shows where a fuzz target's coverage grew from one corpus to a larger one:
# the edge totals, the functions that gained edges, and the source lines that
# lost an uncovered instruction. docs/fuzzing.md uses it to tell late edges in
# this workspace's code from late edges in a dependency (serde_json, say).
#
# libFuzzer can name source lines only with a sanitizer runtime, so the target is
# built with AddressSanitizer into its own target directory (the `-s none`
# build that scripts/fuzz.sh runs is left alone). The first build takes minutes.
# It has the fixed-hash-keys feature and runs with fuzz/fixed-random.c preloaded,
# so that the `checkpoint` target's hash maps take the same paths on every run:
# its totals are then repeatable, and "after" exceeds "before" only where the
# added inputs reach code that the earlier ones do not.
# Usage: scripts/fuzz-coverage-diff.sh TARGET BEFORE_DIR AFTER_DIR
#   BEFORE_DIR: the corpus as it was (for example a copy taken before a run)
#   AFTER_DIR:  inputs added since; it is measured together with BEFORE_DIR, so
#               inputs that libFuzzer later shrank or removed do not count as lost
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 TARGET BEFORE_DIR AFTER_DIR" >&2
  exit 2
fi
target=$1
before=$(realpath "$2")
after=$(realpath "$3")
workspace=$(realpath "$(dirname "$0")/..")
build_dir=${FUZZ_COVERAGE_TARGET_DIR:-/tmp/esac-melody-fuzz-asan}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$workspace/fuzz" && cargo +nightly fuzz build -s address --features fixed-hash-keys \
  --target-dir "$build_dir" "$target" >&2)
binary=$build_dir/x86_64-unknown-linux-gnu/release/$target
fixed_random=$build_dir/fixed-random.so
cc -shared -fPIC -O2 -Wall -o "$fixed_random" "$workspace/fuzz/fixed-random.c"

measure() { # NAME DIR...: runs every input once and keeps libFuzzer's coverage report
  local name=$1
  shift
  LD_PRELOAD=$fixed_random "$binary" -runs=0 -print_coverage=1 -rss_limit_mb=4096 "$@" >"$work/$name.txt" 2>&1
  grep 'DONE' "$work/$name.txt" | sed "s/^/$name: /"
  # Generic functions appear once per instantiation under one name, so lines are
  # counted rather than matched one to one.
  sed -n 's/^ *\(UN\)\{0,1\}COVERED_FUNC: hits: [0-9]* edges: //p' "$work/$name.txt" | sort | uniq -c >"$work/$name.funcs"
  grep 'UNCOVERED_PC' "$work/$name.txt" | sed 's/^ *UNCOVERED_PC: //' | sort | uniq -c >"$work/$name.lines"
}
measure before "$before"
measure after "$before" "$after"

echo "functions whose edge counts changed (count, covered/total, name, source):"
diff "$work/before.funcs" "$work/after.funcs" | sed -n 's/^>/  after: /p; s/^</  before:/p' || true
echo "source lines with fewer uncovered instructions after (count before -> after):"
join -1 2 -2 2 -a 1 -e 0 -o 0,1.1,2.1 \
  <(awk '{print $1, $2}' "$work/before.lines" | sort -k2) \
  <(awk '{print $1, $2}' "$work/after.lines" | sort -k2) |
  awk -v ours="$workspace/" '$3 < $2 { mark = index($1, ours) == 1 ? "  <- this workspace" : ""
                                        printf "  %s %d -> %d%s\n", $1, $2, $3, mark }'
