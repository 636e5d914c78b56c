"""Train the quality model from simulated frames, tune its flag thresholds, and evaluate it on held-out frames.

    python -m astropolis.models.quality.train [--seed 0] [--out DIR] [--quick] [--workers 2]

Reproducible from the seed: example seeds are fixed ranges offset by the seed, torch is seeded and runs
deterministic kernels on one thread, and the weights are written as float32 tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astropolis.models.base import deterministic
from astropolis.models.quality.dataset import FLAGS, GATES, OUTPUTS, Example, Mode, examples, loss_weights, targets
from astropolis.models.quality.evaluation import f1_table, monotonicity
from astropolis.models.quality.model import LEARNED, MONOTONE, QualityNet, predict, save
from astropolis.models.quality.report import GATES_OPEN

PACKAGE = Path(__file__).parent
SIZES = {"train": 3000, "validation": 600, "heldout": 1000, "continuous": 600, "monotone_fields": 16}
QUICK_SIZES = {"train": 300, "validation": 100, "heldout": 150, "continuous": 60, "monotone_fields": 2}
# Disjoint seed ranges per split (offset by the training seed).
OFFSETS = {"train": 0, "validation": 1_000_000, "heldout": 2_000_000, "continuous": 3_000_000}
MODES: dict[str, Mode] = {"train": "training", "continuous": "continuous"}  # the rest are "buffered"
EPOCHS = 150
BATCH = 128


def fit(train: list[Example], *, seed: int) -> QualityNet:
    """Fit the model on training examples: mini-batches of 128, AdamW, cosine learning rate, BCE loss weighted by
    dataset.loss_weights. The MLP's outputs share one weighted mean and each monotone head has its own, so that a
    head neither reweights nor otherwise moves the MLP's training (its gradients reach only the head)."""
    features = torch.from_numpy(np.stack([e.features for e in train])).to(torch.float32)
    labels = torch.from_numpy(np.stack([targets(e) for e in train])).to(torch.float32)
    weights = torch.from_numpy(np.stack([loss_weights(e) for e in train])).to(torch.float32)
    with deterministic():
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        model = QualityNet()
        model.mean.copy_(features.mean(dim=0))
        model.scale.copy_(features.std(dim=0).clamp_min(1e-3))
        optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, EPOCHS)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        groups = [[OUTPUTS.index(name) for name in LEARNED], *([OUTPUTS.index(name)] for name in MONOTONE)]
        model.train()
        for _ in range(EPOCHS):
            permutation = torch.randperm(len(features), generator=order)
            for start in range(0, len(features), BATCH):
                batch = permutation[start : start + BATCH]
                optimiser.zero_grad()
                weight = weights[batch]
                losses = loss_fn(model(features[batch]), labels[batch]) * weight
                sum(losses[:, group].sum().div(weight[:, group].sum()) for group in groups).backward()
                optimiser.step()
            schedule.step()
    return model.eval()


def tune_thresholds(model: QualityNet, validation: list[Example]) -> dict[str, float]:
    """Per flag, the decision threshold (0.2..0.8) with the best F1 on the validation set."""
    probabilities = predict(model.double(), np.stack([e.features for e in validation]))[:, : len(FLAGS)]
    model.float()
    labels = np.stack([e.labels for e in validation])
    chosen: dict[str, float] = {}
    for index, name in enumerate(FLAGS):
        best, best_f1 = 0.5, -1.0
        for threshold in np.round(np.arange(0.2, 0.81, 0.05), 2):
            f1 = f1_table(probabilities[:, [index]], labels[:, [index]], [float(threshold)], (name,))[name]["f1"]
            if f1 > best_f1 + 1e-9:
                best, best_f1 = float(threshold), f1
        chosen[name] = best
    model.thresholds.copy_(torch.tensor([chosen[name] for name in FLAGS]))
    return chosen


def train(
    *, seed: int = 0, out_dir: Path | None = None, quick: bool = False, workers: int = 2, cache: Path | None = None
) -> dict[str, Any]:
    """Generate data, fit, tune, evaluate; write quality.pt and metrics.json to `out_dir` (the package by
    default); return the metrics. `cache`: a pickle of the generated examples to reuse (or write) while
    experimenting; the examples are a pure function of the seeds either way."""
    sizes = QUICK_SIZES if quick else SIZES
    out = Path(out_dir) if out_dir is not None else PACKAGE
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    if cache is not None and Path(cache).is_file():
        sets = pickle.loads(Path(cache).read_bytes())
    else:
        sets = {
            split: examples(
                range(seed + OFFSETS[split], seed + OFFSETS[split] + sizes[split]),
                MODES.get(split, "buffered"),
                workers=workers,
            )
            for split in ("train", "validation", "heldout", "continuous")
        }
        if cache is not None:
            Path(cache).write_bytes(pickle.dumps(sets))
    generated = time.perf_counter()
    model = fit(sets["train"], seed=seed)
    thresholds = tune_thresholds(model, sets["validation"])
    fitted = time.perf_counter()
    weights = out / "quality.pt"
    save(model, weights)
    inference = model.double().eval()
    metrics: dict[str, Any] = {
        "seed": seed,
        "quick": quick,
        "sizes": sizes,
        "thresholds": thresholds,
        "label_rates": {name: float(np.mean([e.labels[i] for e in sets["heldout"]])) for i, name in enumerate(FLAGS)},
        "heldout": _evaluate(inference, sets["heldout"], thresholds),
        "heldout_continuous": _evaluate(inference, sets["continuous"], thresholds),
        "heldout_gates": _evaluate_gates(inference, sets["heldout"]),
        "monotonicity": monotonicity(inference, fields=sizes["monotone_fields"], seed=seed, workers=workers),
        "weights_sha256": "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest(),
        "weights_bytes": weights.stat().st_size,
        "seconds": {
            "data": round(generated - started, 1),
            "fit": round(fitted - generated, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _evaluate(model: QualityNet, split: list[Example], thresholds: dict[str, float]) -> dict[str, Any]:
    probabilities = predict(model, np.stack([e.features for e in split]))[:, : len(FLAGS)]
    labels = np.stack([e.labels for e in split])
    return f1_table(probabilities, labels, [thresholds[name] for name in FLAGS], FLAGS)


def _evaluate_gates(model: QualityNet, split: list[Example]) -> dict[str, Any]:
    """The gate outputs against their labels where each gate is fully open (report.GATES_OPEN)."""
    probabilities = predict(model, np.stack([e.features for e in split]))[:, len(FLAGS) :]
    labels = np.stack([targets(e)[len(FLAGS) :] for e in split])
    return f1_table(probabilities, labels, [GATES_OPEN[name][1] for name in GATES], GATES)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the package)")
    parser.add_argument("--quick", action="store_true", help="small sets, for a smoke test")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering frames")
    parser.add_argument("--cache", type=Path, default=None, help="reuse (or write) the generated examples here")
    args = parser.parse_args()
    metrics = train(seed=args.seed, out_dir=args.out, quick=args.quick, workers=args.workers, cache=args.cache)
    print(json.dumps({k: metrics[k] for k in ("heldout", "monotonicity", "weights_sha256", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
