"""Building labelled sets from many simulated pairs, in parallel worker processes, deterministically.

Every pair is a pure function of (split, index), workers only change how fast the set is built, never what
it holds: results are gathered in index order.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from astropolis.models.transients.dataset import PairExamples, pair_examples
from astropolis.models.transients.stamps import STAMP_CHANNELS, STAMP_SIZE


@dataclass
class LabelledSet:
    """Triplets, labels and S/N of many pairs, plus every injected transient's outcome."""

    stamps: np.ndarray  # (n, STAMP_CHANNELS, S, S) float16
    labels: np.ndarray  # (n,) int8
    snr: np.ndarray  # (n,) float32
    cr_flag: np.ndarray  # (n,) bool: astroscrappy's verdict
    pair: np.ndarray  # (n,) index of the pair each triplet came from
    transient_snr: np.ndarray  # (t,)
    transient_candidate: np.ndarray  # (t,) global triplet index, -1 if not detected
    transient_host: np.ndarray  # (t,) bool
    transient_covered: np.ndarray  # (t,) bool
    pairs: int
    refused: int


def _one(job: tuple[str, int, int]) -> PairExamples:
    split, index, size = job
    return pair_examples(split, index, size)


def build(split: str, indices: range, *, workers: int = 2, size: int = 512) -> LabelledSet:
    """The labelled set of pairs `indices` of `split`, built by `workers` processes."""
    jobs = [(split, i, size) for i in indices]
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_one, jobs, chunksize=4))
    else:
        results = [_one(job) for job in jobs]
    offsets = np.cumsum([0] + [len(r.labels) for r in results])
    candidate = [np.where(r.transient_found >= 0, r.transient_found + offsets[k], -1) for k, r in enumerate(results)]
    empty = np.zeros((0, STAMP_CHANNELS, STAMP_SIZE, STAMP_SIZE), np.float16)
    return LabelledSet(
        stamps=np.concatenate([r.stamps for r in results]) if results else empty,
        labels=np.concatenate([r.labels for r in results]).astype(np.int8),
        snr=np.concatenate([r.snr for r in results]).astype(np.float32),
        cr_flag=np.concatenate([r.cr_flag for r in results]).astype(bool),
        pair=np.concatenate([np.full(len(r.labels), k) for k, r in enumerate(results)]).astype(np.int64),
        transient_snr=np.concatenate([r.transient_snr for r in results]),
        transient_candidate=np.concatenate(candidate).astype(np.int64),
        transient_host=np.concatenate([r.transient_host for r in results]).astype(bool),
        transient_covered=np.concatenate([r.transient_covered for r in results]).astype(bool),
        pairs=len(results),
        refused=sum("refused" in r.info for r in results),
    )
