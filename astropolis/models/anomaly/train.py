"""Train the anomaly model from a seed: `python -m astropolis.models.anomaly.train [--seed 0] [--quick]`.

1. Measure ordinary simulated frames (training split, RA 0-180°, half with defects).
2. Fit the PCA autoencoder on the cutouts of well-measured sources, then the isolation forest on all features.
3. Calibrate the threshold: the 99.5th percentile of scores of ordinary sources in other frames (calibration
   split, never trained on).
4. Judge it on held-out frames (RA 180-360°, other seeds) with injected unusual objects.
5. Write the model (`anomaly.npz`, reproducible bytes), the figures and `training.json` with the figures of
   merit. Everything is single-threaded and seeded: the same seed gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from astropolis.models.anomaly.dataset import ANOMALIES_PER_FRAME, example
from astropolis.models.anomaly.evaluation import Measured, evaluate, measure_examples
from astropolis.models.anomaly.model import FEATURES, forest_arrays, load, save, with_reconstruction

PACKAGE = Path(__file__).parent
FULL = {"train": 450, "calibrate": 200, "held_out": 300}
QUICK = {"train": 40, "calibrate": 20, "held_out": 30}
PCA_COMPONENTS = 12
PCA_MIN_SNR = 50.0
TREES = 300
TREE_SAMPLES = 512
THRESHOLD_PERCENTILE = 99.5


@dataclass(frozen=True)
class Plan:
    """How many frames of each split to simulate."""

    train: int
    calibrate: int
    held_out: int


def _stack(frames: list[Measured]) -> tuple[np.ndarray, np.ndarray]:
    features = [f.sources.features for f in frames if len(f.sources)]
    cutouts = [f.sources.cutouts for f in frames if len(f.sources)]
    return np.concatenate(features), np.concatenate(cutouts)


def fit(frames: list[Measured], seed: int) -> dict[str, np.ndarray]:
    """PCA on the cutouts of well-measured sources, then the isolation forest on every source's features."""
    from sklearn.ensemble import IsolationForest

    base, cutouts = _stack(frames)
    bright = cutouts[base[:, 0] >= np.log10(PCA_MIN_SNR)]
    mean = bright.mean(axis=0)
    _, _, vt = np.linalg.svd(bright - mean, full_matrices=False)
    components = vt[:PCA_COMPONENTS]
    # Signs of singular vectors are arbitrary; fix them so the file does not depend on LAPACK's choice.
    pivots = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    components = components * np.where(pivots < 0, -1.0, 1.0)[:, None]
    features = with_reconstruction(base, cutouts, mean, components)
    forest = IsolationForest(
        n_estimators=TREES, max_samples=min(TREE_SAMPLES, len(features)), random_state=seed, n_jobs=1
    )
    forest.fit(features)
    arrays = {"pca_mean": mean, "pca_components": components, **forest_arrays(forest)}
    arrays["low"] = np.percentile(features, 100.0 - THRESHOLD_PERCENTILE, axis=0)
    arrays["median"] = np.median(features, axis=0)
    arrays["high"] = np.percentile(features, THRESHOLD_PERCENTILE, axis=0)
    arrays["feature_names"] = np.array(FEATURES)
    arrays["threshold"] = np.array(1.0)
    probe = load(save(arrays))
    check = features[: min(len(features), 2000)]
    if not np.allclose(probe.score(check), -forest.score_samples(check), rtol=0, atol=1e-12):
        raise AssertionError("exported forest does not score like scikit-learn's")
    return arrays


def calibrate(arrays: dict[str, np.ndarray], frames: list[Measured]) -> float:
    """The THRESHOLD_PERCENTILE-th percentile of scores of the ordinary sources of the calibration frames."""
    model = load(save(arrays))
    base, cutouts = _stack(frames)
    return float(np.percentile(model.score(model.features(base, cutouts)), THRESHOLD_PERCENTILE))


def held_out(seed: int, frames: int) -> list[Measured]:
    """The held-out frames (other half of the sky, other seeds) with ANOMALIES_PER_FRAME injected objects."""
    return measure_examples(example(seed, i, "held_out", anomalies=ANOMALIES_PER_FRAME) for i in range(frames))


def train(*, seed: int = 0, out_dir: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Train, calibrate, evaluate and write the model; returns the figures of merit (also in training.json)."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    plan = Plan(**(QUICK if quick else FULL))
    out = Path(out_dir) if out_dir is not None else PACKAGE
    out.mkdir(parents=True, exist_ok=True)
    training = measure_examples(example(seed, i, "train") for i in range(plan.train))
    calibration = measure_examples(example(seed, i, "calibrate") for i in range(plan.calibrate))
    measured_s = time.perf_counter() - started
    with threadpool_limits(limits=1):  # one BLAS thread: the same SVD whatever the core count
        arrays = fit(training, seed)
    arrays["threshold"] = np.array(calibrate(arrays, calibration))
    fitted_s = time.perf_counter() - started - measured_s
    blob = save(arrays)
    (out / "anomaly.npz").write_bytes(blob)
    model = load(blob)
    judged = held_out(seed + 1000, plan.held_out)
    metrics = evaluate(model, judged)
    train_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "seed": seed,
        "quick": quick,
        "frames": {"train": plan.train, "calibrate": plan.calibrate, "held_out": plan.held_out},
        "train_sources": int(sum(len(f.sources) for f in training)),
        "calibration_sources": int(sum(len(f.sources) for f in calibration)),
        "weights_sha256": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "weights_bytes": len(blob),
        "threshold": round(float(arrays["threshold"]), 6),
        "held_out": metrics,
        "timing_s": {
            "simulate_and_measure": round(measured_s, 1),
            "fit": round(fitted_s, 1),
            "total": round(train_s, 1),
        },
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    (out / "training.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if not quick:
        from astropolis.models.anomaly.card import draw_figures

        draw_figures(model, judged, out, seed=seed)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write (default: the package)")
    parser.add_argument("--quick", action="store_true", help="a small run to check the pipeline")
    args = parser.parse_args(argv)
    result = train(seed=args.seed, out_dir=args.out_dir, quick=args.quick)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
