#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/label (labels for 512- and
4096-byte sectors in every mode, and near misses). The gctl and scenario
seeds are text files written by hand; scenario seeds also include copies of
tests/scenarios/*.toml. Run from the repository root; the output is checked in."""
import struct, pathlib

out = pathlib.Path("fuzz/corpus/label")
out.mkdir(parents=True, exist_ok=True)

def label(name, uuid, ss, size, mode, sector=None):
    b = b"GEOM::MULTIPATH\0"
    b += uuid.encode().ljust(40, b"\0")
    b += name.encode().ljust(16, b"\0")
    b += struct.pack("<IIQB", 1, ss, size, mode)
    assert len(b) == 89
    return b.ljust(sector or ss, b"\0")

U = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1"
seeds = {
    "ap-512": label("disk0", U, 512, 1 << 20, 0),
    "aa-512": label("disk0", U, 512, 1 << 20, 1),
    "ar-4096": label("abcdefghijklmno", U.upper(), 4096, 0x0123456789abc000, 2),
    "noid-512": label("mp", "", 512, 1 << 30, 0),
    "utf8-name-512": label("données", U, 512, 4096, 1),
    "min-128": label("m", U, 128, 256, 0),
    # Near misses, each one field off.
    "bad-mode": label("disk0", U, 512, 1 << 20, 3),
    "bad-sectorsize": label("disk0", U, 520, 1040, 0, 1040),
    "short-buffer": label("disk0", U, 4096, 1 << 20, 0, 512),
    "size-not-multiple": label("disk0", U, 512, 1000, 0),
    "no-magic": bytes(512),
    # What taste takes as FreeBSD does, with an oddity each.
    "odd-uuid-40": label("disk0", "x" * 40, 512, 1 << 20, 0),
    "odd-zero-geometry": label("disk0", U, 0, 0, 7, 512),
}
# A 16-byte name field without a NUL (runs on into the version).
seeds["odd-name-16"] = seeds["ap-512"][:56] + b"0123456789abcdef" + seeds["ap-512"][72:]
for k, v in seeds.items():
    (out / k).write_bytes(v)
# Only the 89 label bytes: shorter than the sector it names.
(out / "label-only").write_bytes(seeds["aa-512"][:89])
