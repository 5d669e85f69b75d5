#!/usr/bin/env python3
"""The written MusicXML scores of `cargo xtask sample`, read back with music21:
the README's check that the scores hold the bars the melodies were asked for.

Per time signature, for every `melody-N.musicxml` named in the folder's
`sample.json`: whether the first bar is the asked upbeat (a full bar when none
was asked), whether the last bar completes the upbeat's (or is a full bar), how many of the bars
between hold exactly one bar of the time signature, and the notes tied across
a bar line per 100 notes (a tie within a bar, which splits a length no single
note value writes, is not counted).

Usage: python3 scripts/scores_with_music21.py SAMPLES_DIR   (pip install music21)
"""

import argparse
import collections
import json
from fractions import Fraction
from pathlib import Path

from music21 import converter, meter, stream


def measure(folder):
    asked = json.loads((folder / "sample.json").read_text())["asked"]
    per_meter = collections.defaultdict(collections.Counter)
    for name, settings in asked.items():
        part = converter.parse(str(folder / f"{name}.musicxml")).parts[0]
        bars = list(part.getElementsByClass(stream.Measure))
        signature = part.recurse().getElementsByClass(meter.TimeSignature)[0]
        bar = Fraction(signature.barDuration.quarterLength)
        upbeat = Fraction(settings["pickup"], 4)
        length = lambda b: Fraction(b.duration.quarterLength)
        counts = per_meter[signature.ratioString]
        counts["scores"] += 1
        counts["upbeat as asked"] += length(bars[0]) == (upbeat or bar)
        counts["last completing it"] += length(bars[-1]) == (bar - upbeat if upbeat else bar)
        # The other way songs end on a bar line: a full last bar after an upbeat.
        counts["last full after an upbeat"] += bool(upbeat) and length(bars[-1]) == bar
        counts["bars between"] += len(bars) - 2
        counts["full"] += sum(length(b) == bar for b in bars[1:-1])
        for b in bars:
            for note in b.recurse().notes:
                counts["notes"] += note.tie is None or note.tie.type == "start"
                tied_on = note.tie is not None and note.tie.type in ("start", "continue")
                counts["ties"] += tied_on and Fraction(note.offset + note.duration.quarterLength) == length(b)
    return per_meter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    per_meter = measure(parser.parse_args().samples)
    total = collections.Counter()
    for name, c in sorted(per_meter.items(), key=lambda kv: -kv[1]["scores"]):
        total.update(c)
        print(
            f"{name}: {c['scores']} scores; upbeat bar as asked {c['upbeat as asked']}, "
            f"last bar completing it {c['last completing it']} (full after an upbeat "
            f"{c['last full after an upbeat']}); bars between full "
            f"{c['full']} of {c['bars between']}; ties across bar lines {c['ties']} in "
            f"{c['notes']} notes ({100 * c['ties'] / max(1, c['notes']):.2f} per 100)"
        )
    print(
        f"all: {total['scores']} scores; upbeat bar as asked {total['upbeat as asked']}, "
        f"last bar completing it {total['last completing it']} (full after an upbeat "
        f"{total['last full after an upbeat']}); bars between full "
        f"{total['full']} of {total['bars between']}"
    )


if __name__ == "__main__":
    main()
