#!/usr/bin/env bash
# Measures issue 27's "done means" for a conditioned model, from the current
# code, the way the README's table "Where the issue's targets stand" does:
# 1,000 melodies asked only for each common meter and each mode, 1,000 asked
# for 8 bars with the rest drawn, 200 asked for each style at 8 bars (all with
# seed 7), the validation songs judged in their place, and the model's
# whole-song NLL on ERK's test songs. Prints one line per target.
#
#   scripts/issue27-targets.sh [OUT] [MODEL] [DATA]
#
# OUT defaults to target/issue27 (each run's samples and judge.json stay
# there), MODEL to assets/essen, DATA to ../shared/data/essen (the songs the
# model was trained on). 7 to 20 minutes on 2 cores (7 where the CPU has
# AVX-512 BF16 or AMX for the bf16 steps).
set -euo pipefail

out=${1:-target/issue27}
model=${2:-assets/essen}
data=${3:-../shared/data/essen}
cd "$(dirname "$0")/.."
mkdir -p "$out"
cargo build --release -q -p xtask
xtask=target/release/xtask

sample() {
  local name=$1
  shift
  if [ -s "$out/$name/judge.json" ]; then
    echo "$name: kept from an earlier run"
    return
  fi
  echo "$name: sample $*"
  "$xtask" sample --model "$model" --seed 7 --judge --data "$data" --out "$out/$name" "$@" > "$out/$name.log"
}

for meter in 2/4 3/4 4/4 6/8; do
  sample "meter-${meter/\//-}" --meter "$meter" --num 1000
done
for mode in major minor; do
  sample "mode-$mode" --mode "$mode" --num 1000
done
sample bars-8 --bars 8 --num 1000
styles=$(python3 - "$model" <<'PY'
import json, sys
config = json.load(open(f"{sys.argv[1]}/config.json"))["conditioning"]
# The collections with at least 100 training songs: those the style classifier keeps.
print(" ".join(s for s, n in config["style_songs"].items() if n >= 100))
PY
)
for style in $styles; do
  sample "style-${style/\//-}" --style "$style" --bars 8 --num 200
done
if [ ! -s "$out/validation/judge.json" ]; then
  "$xtask" judge --validation-songs --data "$data" --out "$out/validation" > "$out/validation.log"
fi
"$xtask" eval --model "$model" --data "$data" > "$out/eval.json" 2> "$out/eval.log"

python3 - "$out" $styles <<'PY'
import json, sys
from pathlib import Path

out, styles = Path(sys.argv[1]), sys.argv[2:]
judged = lambda name: json.loads((out / name / "judge.json").read_text())
validation = judged("validation")
pct = lambda x: f"{100 * x:.1f}%"

def meter_of(judgement, meter):
    return next(m for m in judgement["meters"] if m["meter"] == meter)

print("target | measured | held-out songs | validation songs")
bars = judged("bars-8")
full = sum(m["generated"]["full_bars"] * m["generated"]["inner_bars"] for m in bars["meters"])
inner = sum(m["generated"]["inner_bars"] for m in bars["meters"])
print(f"written bars holding one bar (upbeat and last aside), --bars 8 | {full:.0f} of {inner} | |")
for meter in ["2/4", "3/4", "4/4", "6/8"]:
    m = meter_of(judged(f"meter-{meter.replace('/', '-')}"), meter)
    v = meter_of(validation, meter)
    g, t = m["generated"], m["test"]
    within = t["ties_per_100_notes"] > 0 and abs(g["ties_per_100_notes"] / t["ties_per_100_notes"] - 1) <= 0.3
    print(
        f"{meter} ties per 100 notes within 30% | {g['ties_per_100_notes']:.2f} ({g['ties']} ties, p = {m['ties_p_value']:.2f}) "
        f"{'met' if within else 'not met'} | {t['ties_per_100_notes']:.2f} ({t['ties']}) | {v['generated']['ties_per_100_notes']:.2f}"
    )
    print(
        f"{meter} metric profile within 0.05 | {m['profile_distance']:.3f} (quarters and longer {m['long_note_profile_distance']:.3f}) "
        f"{'met' if m['profile_distance'] <= 0.05 else 'not met'} | | {v['profile_distance']:.3f}"
    )

# Ended by the model exactly at the end of bar 8: a whole number of bars
# after the upbeat's completion, 8 of them.
record = json.loads((out / "bars-8" / "sample.json").read_text())
ended = 0
for name, asked in record["asked"].items():
    text = (out / "bars-8" / f"{name}.txt").read_text().split()
    beats, unit = map(int, asked["meter"].split("/"))
    bar_steps = beats * 16 // unit
    closed = text[-1] == "."
    steps = len(text) - closed
    ended += closed and steps == 8 * bar_steps
print(f"--bars 8: ended by the model at the end of bar 8, at least 90% | {pct(ended / len(record['asked']))} | |")
tonic, tonic_test = bars["generated"]["ends_on_tonic"], bars["test"]["ends_on_tonic"]
print(
    f"--bars 8: ending on the tonic at most 5 points below | {pct(tonic)} ({100 * (tonic_test - tonic):.1f} below) "
    f"{'met' if tonic_test - tonic <= 0.05 else 'not met'} | {pct(tonic_test)} | {pct(validation['generated']['ends_on_tonic'])}"
)
for mode in ["major", "minor"]:
    found = next(m for m in judged(f"mode-{mode}")["modes"] if m["mode"] == mode)
    v = next(m for m in validation["modes"] if m["mode"] == mode)
    met = found["generated_found"] >= 0.9 and found["generated_found"] >= found["test_found"]
    print(
        f"--mode {mode}: found in it, at least 90% and the held-out share | {pct(found['generated_found'])} "
        f"{'met' if met else 'not met'} | {pct(found['test_found'])} | {pct(v['generated_found'])}"
    )
passing = 0
for style in styles:
    found = next(s for s in judged(f"style-{style.replace('/', '-')}")["styles"] if s["style"] == style)
    v = next(s for s in validation["styles"] if s["style"] == style)
    met = found["generated_found"] >= found["test_found"]
    passing += met
    print(
        f"--style {style}: found in it at least as often as its held-out songs | {pct(found['generated_found'])} "
        f"(p = {found['p_value']:.2f}) {'met' if met else 'not met'} | {pct(found['test_found'])} of {found['test']} | {pct(v['generated_found'])}"
    )
print(f"styles met: {passing} of {len(styles)}")
erk = json.loads((out / "eval.json").read_text())["collections"]["deutschl/erk"]
print(f"NLL on ERK's {erk['songs']} test songs, at most 0.66 | {erk['nll_per_token']:.4f} | |")
PY
