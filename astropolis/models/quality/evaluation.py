"""How the quality model is judged: per-flag precision, recall and F1, and whether the score falls (never
rises) as each defect's severity rises on fixed fields.

    python -m astropolis.models.quality.evaluation [--fields 32] [--seed 5] [--workers 2] [--draws 1]

prints the monotonicity check of the committed weights on `fields` fields drawn from `seed` (the model card's
check on fields the score was not tuned on). With `--draws K` every ladder is also rendered with K draws of the
pixel noise (the same sky and defects): how much of a score the noise decides, and whether the score's mean over
the draws ever rises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from astropolis.models.quality.dataset import OUTPUTS
from astropolis.models.quality.features import Measurements, measure
from astropolis.models.quality.meta import FrameMeta
from astropolis.models.quality.model import QualityNet, predict
from astropolis.models.quality.report import score
from astropolis.models.simulator import Defects, FieldSpec, random_field, render

# Severity ladders per defect (tracking in PSF FWHMs, multiplied by the field's seeing x focus).
LADDERS: dict[str, tuple[float, ...]] = {
    "clouds": (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9),
    "focus": (1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 3.5),
    "tracking_fwhm": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
    "satellite_trails": (0, 1, 2, 3),
    "aircraft_trails": (0, 1, 2),
    "hot_pixels": (0, 10, 30, 100, 200),
    "hot_columns": (0, 1, 2, 3),
    "cosmic_rays": (0, 10, 30, 60),
}


def f1_table(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: Sequence[float], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per flag."""
    table: dict[str, dict[str, float]] = {}
    for index, name in enumerate(names):
        predicted = probabilities[:, index] >= thresholds[index]
        truth = labels[:, index] >= 0.5
        tp = float(np.sum(predicted & truth))
        fp = float(np.sum(predicted & ~truth))
        fn = float(np.sum(~predicted & truth))
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": int(truth.sum()),
        }
    return table


def defects_at(name: str, value: float, field: FieldSpec) -> Defects:
    """Defects with one kind set to `value` (tracking in PSF FWHMs, at 30 degrees)."""
    if name == "tracking_fwhm":
        return Defects(tracking_arcsec=value * field.seeing_arcsec, tracking_angle_deg=30.0)
    if name == "focus":
        return Defects(focus=value)
    if name == "clouds":
        return Defects(clouds=value)
    return replace(Defects(), **{name: int(value)})


def field_ladder(field: FieldSpec, name: str) -> list[Measurements]:
    """The measurements of one field's frames as one defect climbs its ladder."""
    frames = (render(field, defects_at(name, value, field)) for value in LADDERS[name])
    return [measure(frame.data, FrameMeta.from_header(frame.header)) for frame in frames]


def field_ladders(job: tuple[int, int, int, int]) -> dict[str, list[Measurements]]:
    """Field `index` of monotone_fields(count, seed), with noise draw `draw`, along every ladder (a pure function of
    the job, for worker processes)."""
    seed, count, index, draw = job
    field = replace(monotone_fields(count, seed)[index], noise_draw=draw)
    return {name: field_ladder(field, name) for name in LADDERS}


def ladder_scores(model: QualityNet, measured: Sequence[Measurements]) -> list[float]:
    """Scores of one field's rungs as one defect climbs its ladder."""
    probabilities = predict(model, np.stack([m.features for m in measured]))
    return [
        score(dict(zip(OUTPUTS, map(float, p), strict=True)), m) for p, m in zip(probabilities, measured, strict=True)
    ]


def monotone_fields(count: int, seed: int) -> list[FieldSpec]:
    """Fixed fields for the monotonicity check (60 s exposures, so that stars are plentiful but unsaturated)."""
    rng = np.random.default_rng([seed, 0x300])
    return [random_field(rng, exposure_s=60.0) for _ in range(count)]


def monotonicity(model: QualityNet, *, fields: int, seed: int, workers: int = 1, draws: int = 1) -> dict[str, Any]:
    """Per defect: the share of fields whose score never rises along the ladder, the share whose score never
    rises by more than 2 points (measurement noise), the largest rise, and the mean score at each rung, all on the
    seed's own noise (draw 0). With `draws` > 1 each ladder is rendered with that many draws of the noise, and per
    defect come also the share of fields whose score never rises on each draw, the share whose mean score over the
    draws never rises, those that do, and the median and largest spread (standard deviation) of one rung's score
    over the draws. Frames are rendered and measured in `workers` processes (the result is the same for any
    number)."""
    jobs = [(seed, fields, index, draw) for draw in range(draws) for index in range(fields)]
    if workers <= 1:
        measured = [field_ladders(job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            measured = pool.map(field_ladders, jobs, chunksize=1)
    result: dict[str, Any] = {}
    for name in LADDERS:
        # scores[draw, field, rung]
        scores = np.array([ladder_scores(model, field[name]) for field in measured]).reshape(draws, fields, -1)
        rises = np.diff(scores[0], axis=1)
        count = max(fields, 1)
        result[name] = {
            "monotone_share": round(int(np.sum(np.all(rises <= 0, axis=1))) / count, 4),
            "within_2_points_share": round(int(np.sum(np.all(rises <= 2.0, axis=1))) / count, 4),
            "largest_rise": round(float(rises.max(initial=0.0)), 2),
            "mean_scores": [round(float(v), 1) for v in scores[0].mean(axis=0)],
            "rising_fields": [int(i) for i in np.flatnonzero(np.any(rises > 0, axis=1))],
        }
        if draws > 1:
            mean_rises = np.diff(scores.mean(axis=0), axis=1)
            spread = scores.std(axis=0)
            draw_rises = np.diff(scores, axis=2)
            result[name] |= {
                "draws": draws,
                "draw_monotone_shares": [round(int(n) / count, 4) for n in np.all(draw_rises <= 0, axis=2).sum(axis=1)],
                "mean_monotone_share": round(int(np.sum(np.all(mean_rises <= 1e-9, axis=1))) / count, 4),
                "mean_rising_fields": [int(i) for i in np.flatnonzero(np.any(mean_rises > 1e-9, axis=1))],
                "largest_mean_rise": round(float(mean_rises.max(initial=0.0)), 2),
                "rung_spread_median": round(float(np.median(spread)), 2),
                "rung_spread_max": round(float(spread.max()), 2),
            }
    return result


def main() -> None:
    """Command-line entry point: the monotonicity check as JSON."""
    import argparse
    import json

    from astropolis.models.quality.resident import QualityResident

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=32)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="processes rendering frames")
    parser.add_argument("--draws", type=int, default=1, help="draws of the pixel noise per ladder")
    args = parser.parse_args()
    if min(args.fields, args.workers, args.draws) < 1:
        parser.error("--fields, --workers and --draws must be at least 1")
    net = QualityResident()._net
    result = monotonicity(net, fields=args.fields, seed=args.seed, workers=args.workers, draws=args.draws)
    print(json.dumps({"fields": args.fields, "seed": args.seed, "draws": args.draws, "monotonicity": result}, indent=2))


if __name__ == "__main__":
    main()
