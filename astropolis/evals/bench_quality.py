"""Throughput of the quality resident against a plain photutils pipeline on the same frames, and the resident's
held-out metrics.

    python -m astropolis.evals.bench_quality [--frames 40] [--size 512] [--heldout 300] [--seed 7]

The frames are seeded simulator frames with random defects (rendered once, not timed). The resident's time
covers everything `assess` does (sep background and sources, PSF profile and moments, sharp pixels, hot
columns, the Hough line search, the model and the report). The plain pipeline is what one would write with
photutils alone: Background2D (64 px boxes, median), DAOStarFinder at 5 sigma, and the FWHM of the 30
brightest stars with photutils.psf.fit_fwhm. Both run in this process on one thread; frames/s and the ratio
are printed, with the simulator's render time per frame size. The held-out metrics are measured on fresh
held-out seeds with the committed weights.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from typing import Any

import numpy as np

from astropolis.models.quality.dataset import FLAGS, draw_defects, examples
from astropolis.models.quality.evaluation import f1_table
from astropolis.models.quality.model import predict
from astropolis.models.quality.resident import QualityResident, assess
from astropolis.models.quality.train import OFFSETS
from astropolis.models.simulator import random_field, render


def make_frames(count: int, size: int, seed: int) -> list[tuple[np.ndarray, Any]]:
    """Seeded frames with random defects: (data as float64 ADU, header)."""
    rng = np.random.default_rng([seed, 0xBE4C])
    frames = []
    for _ in range(count):
        field = random_field(rng, width=size, height=size)
        frame = render(field, draw_defects(rng, field))
        frames.append((frame.data.astype(np.float64), frame.header))
    return frames


def render_times(sizes: tuple[int, ...], seed: int) -> dict[str, float]:
    """Median milliseconds to render one simulator frame of each size (a clean random field, after a warm-up)."""
    rng = np.random.default_rng([seed, 0x5135])
    render(random_field(rng, width=64, height=64))  # loads the catalogues once
    result = {}
    for size in sizes:
        times = []
        for _ in range(5 if size <= 1024 else 1):
            field = random_field(rng, width=size, height=size)
            started = time.perf_counter()
            render(field)
            times.append(time.perf_counter() - started)
        result[f"{size}x{size}_ms"] = round(1000 * float(np.median(times)), 1)
    return result


def photutils_pipeline(data: np.ndarray) -> tuple[int, float]:
    """Background, DAOStarFinder and FWHM with photutils alone: (stars found, median FWHM in pixels)."""
    from photutils.background import Background2D, MedianBackground
    from photutils.detection import DAOStarFinder
    from photutils.psf import fit_fwhm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        background = Background2D(data, (64, 64), filter_size=(3, 3), bkg_estimator=MedianBackground())
        sub = data - background.background
        finder = DAOStarFinder(threshold=5.0 * background.background_rms_median, fwhm=3.0)
        table = finder(sub)
        if table is None or len(table) == 0:
            return 0, float("nan")
        table.sort("flux", reverse=True)
        height, width = data.shape
        x, y = np.asarray(table["x_centroid"]), np.asarray(table["y_centroid"])
        inside = (x > 8) & (x < width - 9) & (y > 8) & (y < height - 9)
        positions = np.column_stack([x[inside], y[inside]])[:30]
        if len(positions) == 0:
            return len(table), float("nan")
        fwhm = fit_fwhm(sub, xypos=positions, fit_shape=7)
        return len(table), float(np.nanmedian(fwhm))


def throughput(frames: list[tuple[np.ndarray, Any]], rounds: int) -> dict[str, float]:
    """Median frames/s of the resident and of the photutils pipeline over `rounds` passes."""
    resident = QualityResident()
    assess(*frames[0], model=resident._net)  # warm caches (weights, Hough lengths) outside the timing
    photutils_pipeline(frames[0][0])
    ours, theirs = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for data, header in frames:
            assess(data, header, model=resident._net)
        ours.append(len(frames) / (time.perf_counter() - started))
        started = time.perf_counter()
        for data, _ in frames:
            photutils_pipeline(data)
        theirs.append(len(frames) / (time.perf_counter() - started))
    resident_fps, photutils_fps = float(np.median(ours)), float(np.median(theirs))
    return {
        "resident_frames_per_s": round(resident_fps, 2),
        "photutils_frames_per_s": round(photutils_fps, 2),
        "ratio": round(resident_fps / photutils_fps, 2),
    }


def heldout_metrics(count: int) -> dict[str, Any]:
    """Per-flag precision/recall/F1 of the committed model on `count` held-out examples never used in training."""
    resident = QualityResident()
    start = OFFSETS["heldout"] + 500_000  # beyond the held-out range train.py reports on, so fresh frames
    split = examples(range(start, start + count), "buffered", workers=1)
    probabilities = predict(resident._net, np.stack([e.features for e in split]))[:, : len(FLAGS)]
    thresholds = resident._net.thresholds.detach().numpy().tolist()
    return f1_table(probabilities, np.stack([e.labels for e in split]), thresholds, FLAGS)


def main() -> None:
    """Print throughput (and ratio) and held-out metrics as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--heldout", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--render-sizes", type=int, nargs="*", default=[512, 1024, 4096])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    frames = make_frames(args.frames, args.size, args.seed)
    result: dict[str, Any] = {
        "frames": args.frames,
        "size": args.size,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "throughput": throughput(frames, args.rounds),
        "simulator_render": render_times(tuple(args.render_sizes), args.seed),
    }
    print(json.dumps(result, indent=2), flush=True)
    if args.heldout > 0:
        print(json.dumps({"heldout": heldout_metrics(args.heldout)}, indent=2))


if __name__ == "__main__":
    main()
