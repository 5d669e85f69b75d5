#!/usr/bin/env python3
"""Held-out songs of one meter, all of them and those of one length, against
generated melodies: the README's "like with like" figures.

`judge` compares melodies asked for a meter with every held-out song of that
meter. Melodies asked for `--bars N` are all N bars long, and the held-out songs
of N bars are not like the rest (in 3/4 mostly Polish, in every meter with
fewer ties across bar lines). For a folder of melodies judged by `cargo xtask
judge` (its `judge.json`), this prints per meter the metric profile distance
and the ties per 100 notes of the generated melodies, of all held-out songs with
regular bars (as `judge` reads them) and of those with N full bars, N read from
the folder's `sample.json`, and which collections those N-bar songs come from.

Usage: python3 scripts/meter_by_length.py PREPARED_DIR SAMPLES_DIR [SAMPLES_DIR ...]
"""

import argparse
import collections
import json
from pathlib import Path


def notes(tokens):
    """(onset step, length in steps) of each note, as judge reads them."""
    out, sounding = [], None
    for step, token in enumerate(tokens):
        if token == "_":
            if sounding:
                sounding[1] += 1
            continue
        if sounding:
            out.append(sounding)
        sounding = None if token in ("r", ".") else [step, 1]
    if sounding:
        out.append(sounding)
    return out


def regular(bars):
    """Every bar full but an upbeat and the last, which is no longer."""
    inner = bars["bars"][1:-1] if bars["upbeat"] > 0 else bars["bars"][:-1]
    return all(b == bars["bar_steps"] for b in inner) and bars["bars"][-1] <= bars["bar_steps"]


def full_bars(bars):
    return len(bars["bars"]) - (bars["upbeat"] > 0)


def measures(songs):
    """Onset profile and ties per 100 notes of held-out songs of one meter."""
    bar = songs[0]["bars"]["bar_steps"]
    onsets, crossing, count = [0] * bar, 0, 0
    for song in songs:
        layout = song["bars"]
        pickup = layout["bars"][0] if layout["upbeat"] > 0 else 0
        offset = (bar - pickup % bar) % bar
        for onset, length in notes(song["tokens"].split()):
            position = (onset + offset) % bar
            onsets[position] += 1
            crossing += position + length > bar
            count += 1
    total = sum(onsets)
    return [o / total for o in onsets], 100 * crossing / max(count, 1)


def total_variation(a, b):
    return sum(abs(x - y) for x, y in zip(a, b)) / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("samples", type=Path, nargs="+")
    args = parser.parse_args()
    songs = [json.loads(line) for line in open(args.prepared / "songs.jsonl")]
    held_out = [s for s in songs if s["split"] == "test" and s.get("bars") and regular(s["bars"])]
    for folder in args.samples:
        judged = json.load(open(folder / "judge.json"))
        asked = json.load(open(folder / "sample.json"))
        lengths = {melody["bars"] for melody in asked["asked"].values()}
        for meter in judged["meters"]:
            of_meter = [s for s in held_out if s["meter"] == meter["meter"]]
            if not of_meter:
                continue
            profile, ties = measures(of_meter)
            generated = meter["generated"]
            line = (
                f"{folder} {meter['meter']}: generated ties {generated['ties_per_100_notes']:.2f}; "
                f"all {len(of_meter)} held-out: profile distance "
                f"{total_variation(generated['onset_profile'], profile):.3f}, ties {ties:.2f}"
            )
            if len(lengths) == 1:
                (bars,) = lengths
                of_length = [s for s in of_meter if full_bars(s["bars"]) == bars]
                if of_length:
                    length_profile, length_ties = measures(of_length)
                    collections_of = collections.Counter(s["collection"] for s in of_length)
                    line += (
                        f"; the {len(of_length)} of {bars} bars: profile distance "
                        f"{total_variation(generated['onset_profile'], length_profile):.3f} "
                        f"(from all of the meter {total_variation(profile, length_profile):.3f}), "
                        f"ties {length_ties:.2f}, from {dict(collections_of.most_common(3))}"
                    )
            print(line)


if __name__ == "__main__":
    main()
