#!/usr/bin/env bash
# Follows the README as a new user would: the download (with ../shared/data
# standing in for the network), then the README's commands exactly as written,
# then checks that every promised file exists and that the trained model beats
# the reference. It runs in a scratch copy of this checkout (tracked files and
# untracked ones git does not ignore), so leftovers here never stop it; the
# build is shared through this checkout's target/. CI runs it after the test
# command.
#
#   scripts/readme-walkthrough.sh               check every step
#   scripts/readme-walkthrough.sh --write-docs  also rewrite docs/walkthrough.md
#                                               and its pictures from this run
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
write_docs=false
[ "${1:-}" = --write-docs ] && write_docs=true
export CARGO_TERM_COLOR=never
shared=$(cd ../shared/data/essen/deutschl/erk && pwd)
scratch=$(mktemp -d)
cache=$(mktemp -d)
logs=$(mktemp -d)
trap 'rm -rf "$scratch" "$cache" "$logs"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$scratch"
export CARGO_TARGET_DIR="$here/target"
export ESAC_MELODY_CACHE=$cache
cd "$scratch"

step() { echo; echo "== $*"; }
fail() { echo "walkthrough: $*" >&2; exit 1; }
# Runs a README command, showing its output and keeping it as $logs/NAME.
run() {
  local name=$1
  shift
  "$@" 2>&1 | tee "$logs/$name"
}

step "the download, from a local mirror instead of the network"
cargo xtask download erk --from "$shared"

step "cargo xtask train"
cargo build --release -q -p xtask
start=$(date +%s)
run train cargo xtask train
echo "train took $(( $(date +%s) - start )) s"
for f in model.safetensors config.json tokenizer.json metrics.json metrics.csv loss.png model.dot data/encoding.json; do
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
run sample-shipped cargo xtask sample --prime "55 _ _ _"
for ext in txt mid musicxml abc wav png; do
  test -s "samples/melody-1.$ext" || fail "samples/melody-1.$ext is missing"
done
grep -q '^55 _ _ _' samples/melody-1.txt || fail "the primer does not start the melody"

step "cargo xtask sample --meter 6/8 --mode minor --style deutschl/zuccal --bars 8 --num 4"
run sample-asked cargo xtask sample --meter 6/8 --mode minor --style deutschl/zuccal --bars 8 --num 4
grep -q '^melody-4 asked for: 8 bars of 6/8.*minor.*style deutschl/zuccal' "$logs/sample-asked" ||
  fail "the melodies do not say what they were asked"
! grep -q 'training songs\? \(is\|are\)' "$logs/sample-asked" ||
  fail "the README's example asks for a kind of song the shipped model barely knows"
grep -q '<beats>6</beats>' samples/melody-1.musicxml || fail "the score is not in 6/8"

step "cargo xtask sample --model runs/erk --num 4 --key G --meter 3/4 --temperature 0.9"
run sample cargo xtask sample --model runs/erk --num 4 --key G --meter 3/4 --temperature 0.9
test -s samples/melody-4.mid || fail "four melodies were asked for"

step "cargo xtask judge --samples samples"
run judge cargo xtask judge --samples samples
test -s samples/judge.json && test -s samples/judge.png || fail "judge wrote nothing"
grep -q "runs/erk/data" samples/judge.json || fail "judge did not use the run's own data"
grep -q "^longest copy: tokens .* of the training song E[0-9]" "$logs/judge" ||
  fail "judge does not name the training song of the longest copy"

step "cargo xtask export --run runs/erk --out export/erk"
run export cargo xtask export --run runs/erk --out export/erk
run inspect cargo xtask inspect export/erk
run publish cargo xtask publish export/erk --repo me/erk-lstm --dry-run

step "cargo xtask serve (the page answers, generates the run's melodies, and offers the shipped model's held-out songs)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo xtask serve --port "$port" > "$logs/serve" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/api/health" > /dev/null && break
  sleep 0.2
done
grep -q "http://127.0.0.1:$port/" "$logs/serve" || { kill $server; fail "serve did not print its address"; }
curl -sf "http://127.0.0.1:$port/" | grep -q "esac-melody composer" || { kill $server; fail "no page"; }
curl -sf "http://127.0.0.1:$port/api/generate?model=run:erk&seed=3&bars=8&meter=3/4" > "$logs/generate" ||
  { kill $server; fail "the API did not generate from runs/erk"; }
curl -sf "http://127.0.0.1:$port/api/models/erk/songs" > "$logs/songs" ||
  { kill $server; fail "the API did not list the shipped erk model's songs"; }
kill $server
grep -q '"abc":"X:1' "$logs/generate" || fail "no ABC in the answer"
grep -q '"longest_copy":[0-9]' "$logs/generate" || fail "a run's own songs give no longest copy"
grep -q '"id":"E0' "$logs/songs" || fail "the shipped erk model offers no held-out songs from the cached erk collection"

step "a second cargo xtask train keeps the first run"
cargo xtask train --max-steps 20 --quiet 2> "$logs/second" > /dev/null
grep -q "runs/erk-2" "$logs/second" || fail "the second run did not go to runs/erk-2"

echo
echo "walkthrough: every README step worked"
$write_docs || exit 0

# The walkthrough page, from this run's output.
docs=$here/docs
cp runs/erk/loss.png "$docs/images/loss.png"
cp samples/melody-4.png "$docs/images/piano-roll.png"
cp samples/judge.png "$docs/images/judge.png"
# Progress bars draw on a terminal only; the logs hold the lines a user reads.
section() { grep -v -e '^\s*$' -e '^ *\(Compiling\|Finished\|Running\) ' "$logs/$1" | sed -e 's/\r//g'; }
melody4=$(sed -n '/^melody-4 /{n;p}' "$logs/sample" | sed 's/^  //' | cut -d' ' -f1-48)
{
  cat <<EOF
# Walkthrough: from a clean clone to a melody you can hear

Everything below was produced by \`scripts/readme-walkthrough.sh --write-docs\`
on $(date -u +%Y-%m-%d) from commit $(git -C "$here" rev-parse --short HEAD), on this project's
$(nproc)-core build machine (no GPU), with \`../shared/data\` standing in for the
download. CI runs the same steps.

## 1. Train

\`\`\`sh
cargo xtask train
\`\`\`

The first run builds the release binary, fetches and verifies the ERK collection
(1,700 Humdrum files; cached, so later runs skip this), prepares it into
\`runs/erk/data\` (songs, vocabulary and how they were encoded), trains and
evaluates:

\`\`\`
$(section train)
\`\`\`

A second \`cargo xtask train\` keeps this run and writes \`runs/erk-2\` (\`--name\`
chooses the folder, \`--resume\` continues a stopped run). While it trains, a
progress bar shows the loss, tokens/s and the time left; \`loss.png\` shows the
curves afterwards:

![training and validation loss](images/loss.png)

## 2. Sample

\`\`\`sh
cargo xtask sample --model runs/erk --num 4 --key G --meter 3/4 --temperature 0.9
\`\`\`

prints each melody's tokens and writes \`samples/melody-N.txt\` (ending in \` .\` when
the model ended it), \`.mid\`, \`.musicxml\`, \`.abc\`, \`.wav\` and a piano roll (time in bars of the
meter, pitches spelled in the key), and
\`samples/sample.json\` (which model wrote them, its encoding and its data). The
tokens stay in the model's key (C major / A minor); the score, MIDI and WAV are
moved to G major and barred in 3/4. Melody 4 begins:

\`\`\`
$melody4 ...
\`\`\`

![piano roll of melody 4](images/piano-roll.png)

For a fuller sound, render the WAV through a General MIDI SoundFont:
\`cargo xtask sample --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2\` (Debian's
\`timgm6mb-soundfont\`).

## 3. Judge

\`\`\`sh
cargo xtask judge --samples samples
\`\`\`

compares the melodies with the held-out test songs of the data the model was
trained on (\`runs/erk/data\`, found through \`samples/sample.json\`) and measures
how much they copy from the training songs:

\`\`\`
$(section judge)
\`\`\`

![pitch-class, interval and note-length histograms](images/judge.png)

Four melodies are a small sample: judge a few hundred (\`--num 200\`) before
reading much into the numbers. The copying rows compare the melodies' longest run
shared with a training song, and their share of 16-token stretches found in
training songs, with the same measures for unseen real songs; the line under
the histogram distances names the training song that holds the longest run,
and where (\`judge.json\` has each melody's).

## 4. Export, inspect, share

\`\`\`sh
cargo xtask export --run runs/erk --out export/erk
cargo xtask inspect export/erk
cargo xtask publish export/erk --repo me/erk-lstm --dry-run
\`\`\`

\`\`\`
$(section export)
\`\`\`

\`export\` writes the Hugging Face model layout (weights under PyTorch names,
\`config.json\` with the encoding, \`tokenizer.json\`, \`generation_config.json\`, a
model card) into a staging folder and moves it into place whole; \`inspect\` lists
every tensor and the config; \`publish --dry-run\` shows what would be uploaded:

\`\`\`
$(section publish)
\`\`\`

With a token, \`cargo xtask-hub publish ...\` uploads it as one commit, and
\`cargo xtask-hub sample --model hub:me/erk-lstm\` downloads and uses it.

## 5. Shell completions

\`\`\`sh
cargo build --release -p xtask
cargo xtask completions bash > ~/.local/share/bash-completion/completions/xtask
\`\`\`

completes \`target/release/xtask\` (put it on your \`PATH\`); \`--help\` on every
subcommand shows examples.
EOF
} > "$docs/walkthrough.md"
echo "wrote $docs/walkthrough.md and its pictures"
