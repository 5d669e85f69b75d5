#!/usr/bin/env bash
# Follows the README as a new user would, on this checkout: the download (with
# ../shared/data standing in for the network), then the README's commands
# exactly as written, then checks that every promised file exists and that the
# trained model beats the reference. CI runs it after the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
shared=../shared/data/essen/deutschl/erk
for leftover in runs/erk samples export; do
  if [ -e "$leftover" ]; then
    echo "$leftover exists: run this on a clean clone" >&2
    exit 1
  fi
done
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export ESAC_MELODY_CACHE=$cache

step() { echo; echo "== $*"; }
fail() { echo "walkthrough: $*" >&2; exit 1; }

step "the download, from a local mirror instead of the network"
cargo xtask download erk --from "$shared"

step "cargo xtask train"
start=$(date +%s)
cargo xtask train
echo "train took $(( $(date +%s) - start )) s including the build"
for f in model.safetensors config.json tokenizer.json metrics.json metrics.csv loss.png model.dot; do
  test -s "runs/erk/$f" || fail "runs/erk/$f is missing"
done
ls runs/erk/events.out.tfevents.* > /dev/null || fail "no TensorBoard events"
python3 - <<'PY' || fail "the trained model does not beat the reference (0.970)"
import json
nll = json.load(open("runs/erk/metrics.json"))["test"]["nll_per_token"]
print(f"test NLL {nll:.4f}")
assert nll < 0.9, nll
PY

step 'cargo xtask sample --prime "55 _ _ _"'
cargo xtask sample --prime "55 _ _ _"
for ext in txt mid musicxml wav png; do
  test -s "samples/melody-1.$ext" || fail "samples/melody-1.$ext is missing"
done
grep -q '^55 _ _ _' samples/melody-1.txt || fail "the primer does not start the melody"

step "cargo xtask sample --model runs/erk --num 4 --key G --meter 3/4 --temperature 0.9"
cargo xtask sample --model runs/erk --num 4 --key G --meter 3/4 --temperature 0.9
test -s samples/melody-4.mid || fail "four melodies were asked for"

step "cargo xtask judge --samples samples"
cargo xtask judge --samples samples
test -s samples/judge.json && test -s samples/judge.png || fail "judge wrote nothing"

step "cargo xtask export --run runs/erk --out export/erk"
cargo xtask export --run runs/erk --out export/erk
cargo xtask inspect export/erk
cargo xtask publish export/erk --repo me/erk-lstm --dry-run
echo
echo "walkthrough: every README step worked"
