#!/usr/bin/env python3
"""Writes systematic variants of the `checkpoint` fuzz target's tiny model into a folder.

Random mutation of the one seed reaches some of the loader's paths only after
hours, or not at all (docs/fuzzing.md, rounds 7 to 11): serde_json's paths for
an end of input inside each construct, each escape, number form and wrong type
in the two JSON texts a checkpoint holds (the safetensors header and
config.json), and, furthest from the seed, headers of many tensors, which take
std's sorts and hashbrown's growth along other paths. This script writes such
variants once; scripts/fuzz.sh hands them to the target with the other seeds.

Every variant is in the target's header-text form (eight 0xFF bytes, the header
as text up to a NUL, then the data; fuzz/entry.rs), alone or behind the seed's
config.json and a NUL, with either text varied and the other left as it is.

Usage: scripts/checkpoint_mutants.py OUT_DIR
"""

import hashlib
import random
import re
import sys
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds" / "checkpoint"

# Bytes that JSON's grammar branches on, and some it refuses.
SINGLE_BYTES = [
    b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"-", b"+", b"0", b"1", b"9",
    b".", b"e", b"E", b"n", b"t", b"f", b" ", b"\t", b"\n", b"\r", b"\x00", b"\x01",
    b"\x1f", b"\x7f", b"\x80", b"\xc3", b"\xe2", b"\xf0", b"\xff", b"x", b"/",
]

# Inside a string: every escape, good and bad, and UTF-8 good and bad.
STRING_INSERTS = [
    b'\\"', b"\\\\", b"\\/", b"\\b", b"\\f", b"\\n", b"\\r", b"\\t", b"\\u0041",
    b"\\u00e9", b"\\u20ac", b"\\uD83D\\uDE00", b"\\uD83D", b"\\uDE00", b"\\uD83Dx",
    b"\\uD83D\\u0041", b"\\uD83D\\n", b"\\u00", b"\\u00G0", b"\\q", b"\\", b"\x01",
    b"\x1f", b"\x7f", "é".encode(), "€".encode(), "😀".encode(), b"\xc3(", b"\xe2\x82",
    b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xff", b"\x80",
]

# In place of a number: every number form, good, out of range and bad.
NUMBERS = [
    b"-0", b"-1", b"0", b"00", b"01", b"1.5", b"1.", b".5", b"+1", b"1e2", b"1E+2",
    b"1e-2", b"0.0e0", b"1e", b"1e+", b"-", b"2147483648", b"4294967296",
    b"9223372036854775807", b"9223372036854775808", b"18446744073709551615",
    b"18446744073709551616", b"99999999999999999999999", b"1.7976931348623157e309",
    b"1e400", b"-1e400", b"1e-400", b"123456789012345678901234567890.5",
    b"0.30000000000000004", b"3 ", b" 3", b"-0.0", b"1e-0", b"0e0", b"0.", b"0.e1",
    b"1.00000000000000000000000000001", b"0.0000000000000000000000000001e400",
    b"1e99999999999999999999", b"1e-99999999999999999999",
    b"123456789012345678901234567890e-5", b"123456789012345678901234567890e400",
    b"12345678901234567890.12345678901234567890e10", b"4.9e-324", b"2.5e-324",
    b"2.2250738585072014e-308", b"1x", b"1.x", b"1ex", b"1e+x", b"--1", b"-x",
]

# After a backslash: the escape letters, the \u forms of each UTF-8 length,
# surrogates paired and not, and a bad hex digit in each of the four places.
ESCAPES = [b"\\" + bytes([byte]) for byte in range(256)] + [
    b"\\u" + digits for digits in (
        b"0000", b"007f", b"0080", b"07ff", b"0800", b"ffff", b"FFFF", b"AbCd",
        b"d800\\udc00", b"dbff\\udfff", b"d800\\u0041", b"d800\\ud800", b"dc00",
        b"d800", b"d800\\", b"d800\\x", b"d800\\uZZZZ", b"d800\\ud", b"G000",
        b"0G00", b"00G0", b"000G", b"00", b"0", b"")]

# In place of any value: every type.
VALUES = [
    b"null", b"true", b"false", b'"x"', b'""', b"1", b"-1", b"1.5", b"[]", b"{}",
    b"[1]", b'{"a":1}', b"[null]", b'["F32"]', b"[1,2,3]", b"[[1]]", b"nul", b"tru",
    b"fals", b"nulll",
]


def split_seed():
    raw = (SEEDS / "tiny-header-text.bin").read_bytes()
    assert raw.startswith(b"\xff" * 8)
    header, data = raw[8:].split(b"\x00", 1)
    config = (SEEDS / "tiny-with-config.bin").read_bytes().split(b"\x00", 1)[0]
    return config, header, data


def replace_at(text, start, end, new):
    return text[:start] + new + text[end:]


def variants(text):
    """Every variant of one JSON text."""
    for end in range(len(text)):
        yield text[:end]
    for at in range(len(text)):
        for byte in SINGLE_BYTES:
            if text[at:at + 1] != byte:
                yield replace_at(text, at, at + 1, byte)
        yield replace_at(text, at, at + 1, b"")
        yield text[:at] + text[at:at + 1] * 2 + text[at + 1:]
    for string in re.finditer(rb'"([^"]*)"', text):
        inner_start, inner_end = string.span(1)
        for where in sorted({inner_start, (inner_start + inner_end) // 2, inner_end}):
            for insert in STRING_INSERTS:
                yield replace_at(text, where, where, insert)
        yield replace_at(text, string.end(), string.end(), b" ")
    for string in list(re.finditer(rb'"([^"]*)"', text))[:2]:
        where = string.start(1)
        for escape in ESCAPES:
            yield replace_at(text, where, where, escape)
        # serde_json scans a string eight bytes at a time: a long string with
        # a quote, escape or control byte at each offset takes each path.
        for offset in range(40):
            for stop in (b'\\"', b"\\n", b"\x01", b"\\u00e9"):
                yield replace_at(text, where, where, b"a" * offset + stop + b"b" * (40 - offset))
    for number in re.finditer(rb"-?[0-9][0-9.eE+-]*", text):
        for form in NUMBERS:
            yield replace_at(text, number.start(), number.end(), form)
    for value in re.finditer(rb'(?<=:)(\[[^\]]*\]|\{[^{}]*\}|"[^"]*"|[-0-9.eE+]+)', text):
        for form in VALUES:
            yield replace_at(text, value.start(), value.end(), form)
    for comma in re.finditer(rb",", text):
        for gap in (b" ", b"\t", b"\n", b"\r", b" \r\n\t"):
            yield replace_at(text, comma.start(), comma.start(), gap)
            yield replace_at(text, comma.end(), comma.end(), gap)
        yield replace_at(text, comma.start(), comma.start(), b",")
    # A key given twice, and an entry the loader does not expect.
    yield text[:-1] + b',"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[36,48]}}'
    yield text[:-1] + b',"__metadata__":{"format":"pt"}}'
    yield text[:-1] + b',"extra":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    yield text[:-1] + b',"extra":1}'
    yield text + b" "
    yield text + b"x"
    yield b" " + text


def offset_orders(count):
    """Orders of `count` tensors' places in the data: sorted, reversed, runs and shuffles."""
    places = list(range(count))
    yield places
    yield places[::-1]
    half = count // 2
    yield places[half:] + places[:half]
    yield places[:half][::-1] + places[half:]
    yield places[::2] + places[1::2]
    yield [place ^ 1 for place in places if place ^ 1 < count] + ([count - 1] if count % 2 else [])
    yield places[1:] + places[:1]
    yield places[-1:] + places[:-1]
    shuffler = random.Random(count)
    for _ in range(8):
        shuffled = places[:]
        shuffler.shuffle(shuffled)
        yield shuffled


# Four-byte tensors of each kind: one float, or two half floats. Round 15's
# late jump came from a header that mixed them (docs/fuzzing.md).
FOUR_BYTE_TENSORS = [(b"F32", b"[1]"), (b"F16", b"[2]"), (b"BF16", b"[2]")]


def many_tensor_files():
    """Headers of up to 80 four-byte tensors in many orders of their offsets.

    safetensors sorts a header's tensors by offset (`Metadata::new`), and
    std's stable sort takes other paths, insertion for short lists and runs
    merged for long ones, by the length and order it meets; round 11's late
    edges were there (docs/fuzzing.md). Each header comes with all its tensors
    `F32`, and again with the kinds taken in turn, which the loader's dtype
    checks and conversions tell apart (round 15).
    """
    for count in (*range(2, 12), 16, 19, 20, 21, 22, 24, 31, 32, 33, 40, 48, 63, 64, 65, 80):
        for order in offset_orders(count):
            for mixed in (False, True):
                entries = b",".join(
                    b'"t%d":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}'
                    % (name, *FOUR_BYTE_TENSORS[name % 3 if mixed else 0], 4 * place, 4 * place + 4)
                    for name, place in enumerate(order)
                )
                yield b"\xff" * 8 + b"{" + entries + b"}\x00" + b"\x00" * (4 * count)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    config, header, data = split_seed()
    weights = b"\xff" * 8 + header + b"\x00" + data
    inputs = set()
    for varied in variants(header):
        inputs.add(b"\xff" * 8 + varied + b"\x00" + data)
    for varied in variants(config):
        # The target takes a config only when the input starts with `{`.
        if varied.startswith(b"{") and b"\x00" not in varied:
            inputs.add(varied + b"\x00" + weights)
    inputs.update(many_tensor_files())
    for payload in inputs:
        (out / hashlib.sha1(payload).hexdigest()).write_bytes(payload)
    print(f"{len(inputs)} inputs in {out}")


if __name__ == "__main__":
    main()
