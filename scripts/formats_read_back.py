#!/usr/bin/env python3
"""Each melody's written formats, read back by other programs, against its MIDI:
the README's check that MusicXML, ABC and kern sound what the MIDI plays.

For every `NAME.mid` in the folder, whichever of `NAME.musicxml` (read by
music21), `NAME.abc` (turned into MIDI by abc2midi, which carries an accidental
to every octave as ABC 2.1's default does) and `NAME.krn` (music21's Humdrum
reader) are beside it must give the same notes: onset, MIDI pitch and length
in quarters, notes tied over bar lines joined. Prints the first difference of
the first few melodies that differ, then a count per format.

`cargo xtask sample` writes the first two; the composer API gives all three:
  for s in $(seq 0 159); do for f in mid musicxml abc krn; do
    curl -s -o DIR/m$s.$f "http://127.0.0.1:8490/api/melody/$f?seed=$s&bars=8&key=G"
  done; done

Usage: python3 scripts/formats_read_back.py DIR
(pip install music21; apt-get install abcmidi)
"""

import argparse
import subprocess
import tempfile
import warnings
from pathlib import Path

from music21 import converter

SHOWN = 3


def sounding(score):
    """Onset, pitch and length of each note, tied pieces joined."""
    notes = []
    for element in score.flatten().notes:
        onset, pitch = float(element.offset), element.pitch.midi
        length = float(element.quarterLength)
        tied_on = element.tie is not None and element.tie.type in ("continue", "stop")
        if tied_on and notes and notes[-1][1] == pitch:
            first, _, so_far = notes[-1]
            notes[-1] = (first, pitch, so_far + length)
        else:
            notes.append((onset, pitch, length))
    return [(round(o, 3), p, round(q, 3)) for o, p, q in notes]


def abc_as_midi(abc, scratch):
    out = Path(scratch) / (abc.stem + ".abc.mid")
    subprocess.run(
        ["abc2midi", str(abc), "-o", str(out), "-quiet", "-silent"],
        check=True,
        capture_output=True,
    )
    return converter.parse(str(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    warnings.filterwarnings("ignore")
    readers = {
        "musicxml": lambda path, _: converter.parse(str(path)),
        "abc": abc_as_midi,
        "krn": lambda path, _: converter.parse(str(path), format="humdrum"),
    }
    checked = {name: 0 for name in readers}
    differ = {name: 0 for name in readers}
    melodies = sorted(folder.glob("*.mid"))
    with tempfile.TemporaryDirectory() as scratch:
        for midi in melodies:
            played = sounding(converter.parse(str(midi)))
            for name, read in readers.items():
                path = midi.with_suffix("." + name)
                if not path.exists():
                    continue
                checked[name] += 1
                written = sounding(read(path, scratch))
                if written == played:
                    continue
                differ[name] += 1
                if differ[name] <= SHOWN:
                    pairs = zip(played, written)
                    first = next(((i, p, w) for i, (p, w) in enumerate(pairs) if p != w), None)
                    if first is None:
                        print(f"{path.name}: {len(written)} notes, the MIDI {len(played)}")
                    else:
                        i, p, w = first
                        print(f"{path.name}: note {i} is {w}, the MIDI's {p}")
    print(f"{len(melodies)} melodies")
    for name in readers:
        print(f"{name}: {differ[name]} of {checked[name]} differ from the MIDI")


if __name__ == "__main__":
    main()
