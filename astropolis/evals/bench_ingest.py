"""Ingest throughput of 64 MiB FITS frames against the floor of `sha256sum` + `cp` + `sync` on the same files.

    python -m astropolis.evals.bench_ingest [--frames 8] [--rounds 3] [--dir /path/on/the/disk/to/measure]

Each round times both on fresh destinations (the lake would otherwise deduplicate): the floor is one shell
command that hashes every file, copies every file and syncs (with coreutils' sha256sum as the issue asks,
and again with `openssl dgst -sha256`, which uses the same SHA-NI code as Python's hashlib); the lake
ingests every file with its per-file fsyncs, header parse and catalog commit. The medians and their ratios
are printed. Targets: >= 200 MB/s and within 1.5x of the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from astropolis.lake import Lake

FRAME_SIDE = 4096  # 4096 x 4096 float32 = 64 MiB of pixels


def make_frames(directory: Path, count: int, seed: int) -> list[Path]:
    """Seeded 64 MiB frames with a realistic header."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        data = rng.normal(1000.0, 15.0, (FRAME_SIDE, FRAME_SIDE)).astype(np.float32)
        header = fits.Header(
            {
                "OBSERVAT": "bench",
                "DATE-OBS": f"2026-11-25T21:{index:02d}:00",
                "EXPTIME": 60.0,
                "FILTER": "R",
                "CTYPE1": "RA---TAN",
                "CTYPE2": "DEC--TAN",
                "CRVAL1": 10.0 + index,
                "CRVAL2": 20.0,
                "CRPIX1": FRAME_SIDE / 2,
                "CRPIX2": FRAME_SIDE / 2,
                "CDELT1": -1 / 3600,
                "CDELT2": 1 / 3600,
            }
        )
        path = directory / f"frame{index:02d}.fits"
        fits.PrimaryHDU(data, header).writeto(path)
        paths.append(path)
    return paths


def time_floor(paths: list[Path], destination: Path, hasher: str = "sha256sum") -> float:
    """`hasher` + cp + sync of the same files, as one shell pipeline."""
    os.sync()
    files = " ".join(f"'{p}'" for p in paths)
    started = time.perf_counter()
    subprocess.run(f"{hasher} {files} > /dev/null && cp {files} '{destination}/' && sync", shell=True, check=True)
    return time.perf_counter() - started


def time_ingest(paths: list[Path], root: Path) -> float:
    """Lake.ingest of every file (each one hashed, copied, fsynced, parsed and catalogued)."""
    os.sync()
    started = time.perf_counter()
    with Lake(root) as lake:
        for path in paths:
            lake.ingest(path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (the disk being measured)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="astropolis-bench-") as work:
        sources = Path(work) / "sources"
        sources.mkdir()
        paths = make_frames(sources, args.frames, args.seed)
        total = sum(p.stat().st_size for p in paths)
        contenders: dict[str, Callable[[Path], float]] = {
            "floor": lambda destination: time_floor(paths, destination),
            "ingest": lambda destination: time_ingest(paths, destination),
        }
        if shutil.which("openssl"):
            contenders["openssl_floor"] = lambda destination: time_floor(paths, destination, "openssl dgst -sha256")
        timings: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_index in range(args.rounds):
            # Rotate the order so no contender always runs with the warmest cache.
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                with tempfile.TemporaryDirectory(dir=work) as destination:
                    timings[name].append(contenders[name](Path(destination)))
    floors, ingests, openssl_floors = timings["floor"], timings["ingest"], timings.get("openssl_floor", [])
    floor, ingest = statistics.median(floors), statistics.median(ingests)
    openssl_floor = statistics.median(openssl_floors) if openssl_floors else None
    figures = {
        "frames": args.frames,
        "frame_bytes": total // args.frames,
        "rounds": args.rounds,
        "floor_s": round(floor, 3),
        "ingest_s": round(ingest, 3),
        "floor_MB_per_s": round(total / floor / 1e6, 1),
        "ingest_MB_per_s": round(total / ingest / 1e6, 1),
        "ingest_over_floor": round(ingest / floor, 3),
        "openssl_floor_s": None if openssl_floor is None else round(openssl_floor, 3),
        "ingest_over_openssl_floor": None if openssl_floor is None else round(ingest / openssl_floor, 3),
        "target_MB_per_s": 200,
        "target_ratio": 1.5,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        size_mib = total / args.frames / 2**20
        print(f"ingest of {args.frames} x {size_mib:.0f} MiB FITS frames, median of {args.rounds} rounds")
        print(f"  floor  sha256sum + cp + sync : {figures['floor_s']:.3f} s  {figures['floor_MB_per_s']:.0f} MB/s")
        print(f"  astropolis lake ingest       : {figures['ingest_s']:.3f} s  {figures['ingest_MB_per_s']:.0f} MB/s")
        if openssl_floor is not None:
            print(
                f"  floor  openssl sha256 + cp + sync: {openssl_floor:.3f} s  {total / openssl_floor / 1e6:.0f} MB/s"
                "  (same SHA-NI hash as ours)"
            )
        print(f"  ratio ingest / floor         : {figures['ingest_over_floor']:.2f}x (target <= 1.5x, >= 200 MB/s)")
        if openssl_floor is not None:
            print(f"  ratio ingest / openssl floor : {figures['ingest_over_openssl_floor']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
