"""Train the real/bogus network on simulated pairs: `python -m astropolis.models.transients.train [--quick]`.

Reproducible from the seed: the pairs are pure functions of (split, index), the network's initialisation,
the per-epoch class-balanced draws and the flips come from `seed`, and torch runs with deterministic
algorithms on a fixed two threads. The best epoch by validation ROC AUC (real vs everything else) is kept
and written as weights.npz next to a training.json of what was done; put the printed sha256 into
resident.WEIGHTS_SHA256 when the weights are meant to be committed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from astropolis.models.transients.cnn import CLASSES, build_model, parameter_count, weights_bytes
from astropolis.models.transients.metrics import auc
from astropolis.models.transients.sets import LabelledSet, build

PACKAGE_DIR = Path(__file__).resolve().parent
FULL = {"train_pairs": 2000, "validation_pairs": 250, "epochs": 12, "per_class": 9000}
QUICK = {"train_pairs": 60, "validation_pairs": 20, "epochs": 2, "per_class": 1500}
BATCH = 128
LEARNING_RATE = 2e-3
THREADS = 2
# Missing a real transient costs a follow-up never taken; calling a bogus one real costs one observation. So reals
# are drawn at twice the other classes' cap each epoch (all of them, 15-17 k) and weigh twice in the loss.
REAL_DRAW = 2
REAL_WEIGHT = 2.0


def _epoch_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """At most `per_class` triplets of each class (REAL_DRAW times as many reals), drawn afresh each epoch,
    shuffled."""
    chosen = []
    for k in range(len(CLASSES)):
        members = np.flatnonzero(labels == k)
        cap = per_class * (REAL_DRAW if k == 0 else 1)
        if len(members) > cap:
            members = rng.choice(members, cap, replace=False)
        chosen.append(members)
    return rng.permutation(np.concatenate(chosen))


def _flip(batch: Any, rng: np.random.Generator) -> Any:
    """Random left-right and up-down flips (no 90° turns: hot columns are always columns)."""
    if rng.uniform() < 0.5:
        batch = batch.flip(3)
    if rng.uniform() < 0.5:
        batch = batch.flip(2)
    return batch


def _p_real(model: Any, stamps: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(stamps), 1024):
            batch = torch.from_numpy(stamps[start : start + 1024].astype(np.float32))
            out.append(torch.softmax(model(batch), dim=1)[:, 0].numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0)


def fit(train_set: LabelledSet, validation: LabelledSet, *, seed: int, epochs: int, per_class: int) -> dict[str, Any]:
    """Train on `train_set`, keep the epoch with the best validation AUC; returns weights and history."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model()
    stamps = torch.from_numpy(train_set.stamps)
    labels = torch.from_numpy(train_set.labels.astype(np.int64))
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps = epochs * (len(_epoch_indices(train_set.labels, per_class, np.random.default_rng(0))) // BATCH + 1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, total_steps=max(steps, 1))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([REAL_WEIGHT] + [1.0] * (len(CLASSES) - 1)))
    best: dict[str, Any] = {"auc": -1.0}
    history = []
    model.train()
    for epoch in range(epochs):
        order = _epoch_indices(train_set.labels, per_class, rng)
        total = 0.0
        for start in range(0, len(order), BATCH):
            index = torch.from_numpy(order[start : start + BATCH])
            batch = _flip(stamps[index].float(), rng)
            optimiser.zero_grad()
            loss = loss_fn(model(batch), labels[index])
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        score = auc(_p_real(model, validation.stamps), validation.labels == 0)
        history.append(
            {"epoch": epoch + 1, "loss": round(total / max(len(order), 1), 5), "validation_auc": round(score, 5)}
        )
        if score > best["auc"]:
            best = {"auc": score, "epoch": epoch + 1, "weights": weights_bytes(model)}
    return {**best, "history": history, "parameters": parameter_count(model)}


def train(*, seed: int = 0, out_dir: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Build the simulated sets, train, write weights.npz and training.json to `out_dir` (default: this
    package), and return the summary (sha256, sizes, validation AUC, timings, load average)."""
    import hashlib

    import torch

    plan = QUICK if quick else FULL
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    train_set = build("train", range(plan["train_pairs"]), workers=THREADS)
    validation = build("validation", range(plan["validation_pairs"]), workers=THREADS)
    built = time.perf_counter()
    result = fit(train_set, validation, seed=seed, epochs=plan["epochs"], per_class=plan["per_class"])
    finished = time.perf_counter()
    target = Path(out_dir) if out_dir is not None else PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    (target / "weights.npz").write_bytes(result["weights"])
    summary = {
        "seed": seed,
        "quick": quick,
        "weights_sha256": "sha256:" + hashlib.sha256(result["weights"]).hexdigest(),
        "weights_bytes": len(result["weights"]),
        "parameters": result["parameters"],
        "best_epoch": result["epoch"],
        "validation_auc": round(result["auc"], 5),
        "real_draw": REAL_DRAW,
        "real_weight": REAL_WEIGHT,
        "history": result["history"],
        "train_pairs": train_set.pairs,
        "train_pairs_refused": train_set.refused,
        "validation_pairs": validation.pairs,
        "train_triplets": {name: int((train_set.labels == k).sum()) for k, name in enumerate(CLASSES)},
        "validation_triplets": {name: int((validation.labels == k).sum()) for k, name in enumerate(CLASSES)},
        "seconds_data": round(built - started, 1),
        "seconds_fit": round(finished - built, 1),
        "seconds_total": round(finished - started, 1),
        "cpu_seconds": round(sum(os.times()[:4]), 1),  # CPU time, self + workers: compare with the wall time
        "threads": THREADS,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    (target / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory for weights.npz and training.json")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (minutes → seconds)")
    args = parser.parse_args(argv)
    summary = train(seed=args.seed, out_dir=args.out, quick=args.quick)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
