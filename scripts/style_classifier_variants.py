#!/usr/bin/env python3
"""The style classifier variants the README's "Style" section compares.

Reads a prepared folder (`cargo xtask prepare --data ../shared/data/essen --out
DIR`) and prints, for each variant, the mean share of the validation songs of
the collections with at least 100 songs that a nearest-centroid classifier,
fitted on the training songs, finds in their own collection. The chosen variant
is what `judge::style::StyleClassifier` does; the first is the earlier one.

Usage: python3 scripts/style_classifier_variants.py DIR [--split val|test]
Needs numpy.
"""

import argparse
import collections
import json
from pathlib import Path

import numpy as np

MAX_INTERVAL = 12
MAX_DURATION = 16
COMMON_METERS = ["2/4", "3/4", "4/4", "6/8", "3/8", "free"]


def notes(tokens):
    """(pitch, length in steps) of each note, as judge reads them."""
    out, sounding = [], False
    for token in tokens:
        if token == "_":
            if sounding:
                out[-1][1] += 1
        elif token == "r":
            sounding = False
        elif token != ".":
            out.append([int(token), 1])
            sounding = True
    return out


def shares(counts):
    total = counts.sum()
    return counts / total if total else counts


def histogram_features(song):
    song_notes = notes(song["tokens"].split())
    pitch_classes = np.zeros(12)
    intervals = np.zeros(2 * MAX_INTERVAL + 1)
    durations = np.zeros(MAX_DURATION)
    for pitch, length in song_notes:
        pitch_classes[pitch % 12] += 1
        durations[min(max(length, 1), MAX_DURATION) - 1] += 1
    for (a, _), (b, _) in zip(song_notes, song_notes[1:]):
        intervals[max(-MAX_INTERVAL, min(MAX_INTERVAL, b - a)) + MAX_INTERVAL] += 1
    pitches = [p for p, _ in song_notes] or [60]
    return [shares(pitch_classes), shares(intervals), shares(durations)], pitches


def features(song, meters, extras):
    parts, pitches = histogram_features(song)
    meter = song.get("meter") or "free"
    if meters is not None:
        parts.append(np.array([meter == m for m in meters] + [meter not in meters], float))
    if "range" in extras:
        parts.append(np.array([(max(pitches) - min(pitches)) / 12]))
    if "mean pitch" in extras:
        parts.append(np.array([np.mean(pitches) / 12 - 5]))
    return np.concatenate(parts)


def score(songs, split, min_songs, meters, extras, scaled, floor):
    big = sorted(k for k, n in collections.Counter(s["collection"] for s in songs).items() if n >= 100)
    train = [s for s in songs if s["split"] == "train"]
    counts = collections.Counter(s["collection"] for s in train)
    train = [s for s in train if counts[s["collection"]] >= min_songs]
    if meters == "20 songs":
        meter_counts = collections.Counter(s.get("meter") for s in train)
        meters = [m for m, n in meter_counts.items() if m and n >= 20]
    x = np.array([features(s, meters, extras) for s in train])
    labels = [s["collection"] for s in train]
    styles = sorted(set(labels))
    index = [styles.index(label) for label in labels]
    centroids = np.array([x[[i for i, k in enumerate(index) if k == j]].mean(0) for j in range(len(styles))])
    weights = np.ones(x.shape[1])
    if scaled:
        spread = (x - centroids[index]).std(0)
        weights = 1 / np.maximum(spread, floor) ** 2
    found = []
    for style in big:
        held_out = [s for s in songs if s["split"] == split and s["collection"] == style]
        nearest = [styles[int(np.argmin(((centroids - features(s, meters, extras)) ** 2 * weights).sum(1)))] for s in held_out]
        found.append(np.mean([n == style for n in nearest]))
    return np.mean(found)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    args = parser.parse_args()
    songs = [json.loads(line) for line in open(args.prepared / "songs.jsonl")]
    variants = [
        ("27 collections, shares (the earlier classifier)", 1, None, [], False, 0),
        ("13 collections, shares", 100, None, [], False, 0),
        ("27 collections, shares, scaled by spread", 1, None, [], True, 1e-3),
        ("13 collections, shares, scaled by spread", 100, None, [], True, 1e-3),
        ("27 collections, shares and meter, scaled", 1, COMMON_METERS, [], True, 1e-3),
        ("13 collections, shares and meter, scaled (chosen)", 100, "20 songs", [], True, 0.01),
        ("13 collections, shares, meter and range, scaled", 100, COMMON_METERS, ["range"], True, 1e-3),
        ("13 collections, shares, meter, range and mean pitch, scaled", 100, COMMON_METERS, ["range", "mean pitch"], True, 1e-3),
    ]
    for name, min_songs, meters, extras, scaled, floor in variants:
        found = score(songs, args.split, min_songs, meters, extras, scaled, floor)
        print(json.dumps({"variant": name, "split": args.split, "found_in_own_collection": round(float(found), 4)}))


if __name__ == "__main__":
    main()
