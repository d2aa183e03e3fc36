#!/usr/bin/env python3
"""TensorBoard event files written by xgrad, read back with TensorBoard's EventAccumulator.

usage: check_tensorboard_logs.py PATH/TO/tensorboard_logs

Runs the helper (its own C++ checks must pass), then checks that every scalar, histogram and
image it printed is in the event files with the same tag, step and value: scalars exactly (as
float32), histogram statistics exactly and bucket counts where printed, images by decoding the
PNG (zlib, every chunk's CRC-32) back to the printed pixels. The copy cut in the middle of its
last record must still yield every earlier record.
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

from tensorboard.backend.event_processing import event_accumulator as ea

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def load(path):
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def decode_png(data):
    """(width, height, channels, pixel bytes) of an 8-bit, filter-0, non-interlaced PNG."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature")
    at, idat, ihdr = 8, b"", None
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        (crc,) = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        check(zlib.crc32(kind + body) == crc, f"PNG chunk {kind} CRC")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    w, h, depth, color, _, _, _ = ihdr
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    row = w * channels
    pixels = b""
    for y in range(h):
        check(raw[y * (row + 1)] == 0, "PNG filter byte 0")
        pixels += raw[y * (row + 1) + 1:(y + 1) * (row + 1)]
    return w, h, channels, pixels


def main():
    helper = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([helper, tmp], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{helper} failed ({out.returncode}): {out.stderr}")
        runs, run, truncated_kept = {}, None, None
        for line in out.stdout.splitlines():
            f = line.split("\t")
            if f[0] == "run":
                run = f[1]
                runs[run] = {"scalar": [], "histo": [], "image": []}
            elif f[0] == "truncated":
                truncated_kept = int(f[1])
            else:
                runs[run][f[0]].append(f[1:])

        counts = {}
        for name, expect in runs.items():
            acc = load(os.path.join(tmp, name))
            tags = acc.Tags()
            check(acc.file_version == 2.0, f"{name}: file_version {acc.file_version}")
            for tag, step, value in expect["scalar"]:
                events = {e.step: e.value for e in acc.Scalars(tag)} if tag in tags["scalars"] else {}
                want = struct.unpack("f", struct.pack("f", float.fromhex(value)))[0]
                check(events.get(int(step)) == want, f"{name}: scalar {tag} step {step}: {events.get(int(step))} != {want}")
            # nothing beyond what was printed
            n_scalars = sum(len(acc.Scalars(t)) for t in tags["scalars"])
            check(n_scalars == len(expect["scalar"]), f"{name}: {n_scalars} scalars, expected {len(expect['scalar'])}")
            for tag, step, lo, hi, num, s, sq, *buckets in expect["histo"]:
                got = [e for e in acc.Histograms(tag) if e.step == int(step)] if tag in tags["histograms"] else []
                check(len(got) == 1, f"{name}: histogram {tag} step {step} present once")
                if not got:
                    continue
                h = got[0].histogram_value
                for field, want in (("min", lo), ("max", hi), ("num", num), ("sum", s), ("sum_squares", sq)):
                    check(getattr(h, field) == float.fromhex(want), f"{name}: {tag} {field} {getattr(h, field)} != {float.fromhex(want)}")
                check(sum(h.bucket) == h.num and h.bucket_limit[-1] == h.max, f"{name}: {tag} buckets add up")
                if buckets:
                    check(list(h.bucket) == [float.fromhex(b) for b in buckets], f"{name}: {tag} bucket counts {list(h.bucket)}")
            for tag, step, w, h, c, pixels in expect["image"]:
                got = [e for e in acc.Images(tag) if e.step == int(step)] if tag in tags["images"] else []
                check(len(got) == 1, f"{name}: image {tag} step {step} present once")
                if not got:
                    continue
                check((got[0].width, got[0].height) == (int(w), int(h)), f"{name}: image {tag} size")
                check(decode_png(got[0].encoded_image_string) == (int(w), int(h), int(c), bytes.fromhex(pixels)),
                      f"{name}: image {tag} step {step} pixels")
            counts[name] = (n_scalars, sum(len(acc.Histograms(t)) for t in tags["histograms"]),
                            sum(len(acc.Images(t)) for t in tags["images"]))

        # the cut copy: every record but the last (an image) reads back
        acc = load(os.path.join(tmp, "truncated"))
        tags = acc.Tags()
        kept = (1 + sum(len(acc.Scalars(t)) for t in tags["scalars"]) + sum(len(acc.Histograms(t)) for t in tags["histograms"]) +
                sum(len(acc.Images(t)) for t in tags["images"]))
        check(kept == truncated_kept, f"truncated: {kept} records read back, expected {truncated_kept}")
        check(sum(len(acc.Scalars(t)) for t in tags["scalars"]) == counts["fit"][0], "truncated: every scalar kept")
        sizes = {n: sum(os.path.getsize(os.path.join(tmp, n, f)) for f in os.listdir(os.path.join(tmp, n))) for n in runs}
        print("event files:", ", ".join(f"{n}: {counts[n][0]} scalars, {counts[n][1]} histograms, {counts[n][2]} images, "
                                        f"{sizes[n]} bytes" for n in runs),
              f"; truncated copy: {kept} of {truncated_kept + 1} records read back")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("tensorboard logs: all checks passed")


if __name__ == "__main__":
    main()
