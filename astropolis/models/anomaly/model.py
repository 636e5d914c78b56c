"""The anomaly model: a linear autoencoder (PCA) over seeing-normalised cutouts, and an isolation forest over the
measured features plus the cutout's reconstruction error.

Both are stored as plain arrays in one `.npz` (no pickle): the PCA mean and components, and every tree of the
forest flattened into node arrays. Scoring walks the trees in numpy exactly as scikit-learn does (features
compared as float32 against float64 thresholds), so the committed file is all inference needs and scikit-learn
is only a training dependency. The file is written with fixed zip timestamps so a rerun of training with the
same seed reproduces it byte for byte.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from astropolis.models.anomaly.features import BASE_FEATURES

FEATURES = (*BASE_FEATURES, "recon")
# How each feature is shown to people: a readable quantity, its unit or meaning, and the inverse of the log taken.
DISPLAY: dict[str, tuple[str, str]] = {
    "log_snr": ("signal-to-noise", "exp10"),
    "size": ("half-light radius / PSF's", "exp"),
    "elongation": ("elongation a/b", "exp"),
    "concentration": ("r80/r20", "exp"),
    "peakiness": ("peak x r50² / flux", "exp"),
    "asymmetry": ("rotational asymmetry", "id"),
    "offset": ("peak-to-centroid offset / r50", "id"),
    "halo": ("light beyond the aperture / flux", "id"),
    "psf_chi2": ("chi² against the frame's PSF", "exp10"),
    "asym_chi2": ("chi² against itself rotated 180°", "exp10"),
    "recon": ("autoencoder residual", "exp10"),
}


def shown(name: str, value: float) -> float:
    """A feature value in the readable unit of DISPLAY."""
    kind = DISPLAY[name][1]
    if kind == "exp":
        return float(np.exp(value))
    if kind == "exp10":
        return float(10.0**value)
    return float(value)


def with_reconstruction(base: np.ndarray, cutouts: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Measured features plus "recon": log10 of the share of each cutout's power the PCA autoencoder (mean and
    components) cannot reconstruct."""
    if len(base) == 0:
        return np.zeros((0, len(FEATURES)))
    centred = cutouts - mean
    residual = centred - (centred @ components.T) @ components
    power = np.maximum((cutouts**2).sum(axis=1), 1e-12)
    recon = np.log10(np.maximum((residual**2).sum(axis=1) / power, 1e-6))
    return np.column_stack([base, recon])


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful search in a binary tree of n points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    more = n > 2
    out[two] = 1.0
    out[more] = 2.0 * (np.log(n[more] - 1.0) + np.euler_gamma) - 2.0 * (n[more] - 1.0) / n[more]
    return out


@dataclass(frozen=True)
class AnomalyModel:
    """Everything the resident scores with, loaded from the committed `.npz`."""

    pca_mean: np.ndarray  # (cells,)
    pca_components: np.ndarray  # (k, cells)
    tree_feature: np.ndarray  # (nodes,) int; -1 at leaves
    tree_threshold: np.ndarray  # (nodes,) float64
    tree_left: np.ndarray  # (nodes,) global index of the left child; -1 at leaves
    tree_right: np.ndarray  # (nodes,)
    tree_value: np.ndarray  # (nodes,) path length credited at a leaf
    tree_roots: np.ndarray  # (trees,) global index of each root
    max_depth: int
    norm: float  # average path length for the forest's sample size
    low: np.ndarray  # (features,) 0.5th percentile on normal sources
    median: np.ndarray
    high: np.ndarray  # 99.5th percentile on normal sources
    threshold: float  # anomaly score above which a source is unusual (99.5th percentile of normal sources)

    def features(self, base: np.ndarray, cutouts: np.ndarray) -> np.ndarray:
        """The full feature matrix: measured features plus the cutouts' reconstruction error."""
        with threadpool_limits(limits=1):  # BLAS on one thread: the same sums in the same order every run
            return with_reconstruction(base, cutouts, self.pca_mean, self.pca_components)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Isolation-forest anomaly score in (0, 1] per row (higher is more unusual; 0.5 is the usual border)."""
        if len(features) == 0:
            return np.zeros(0)
        values = features.astype(np.float32)
        rows = np.arange(values.shape[0])[None, :]
        nodes = np.repeat(self.tree_roots[:, None], values.shape[0], axis=1)
        for _ in range(self.max_depth + 1):
            feature = self.tree_feature[nodes]
            leaf = feature < 0
            if leaf.all():
                break
            goes_left = values[rows, np.where(leaf, 0, feature)] <= self.tree_threshold[nodes]
            nodes = np.where(leaf, nodes, np.where(goes_left, self.tree_left[nodes], self.tree_right[nodes]))
        depth = self.tree_value[nodes].sum(axis=0) / len(self.tree_roots)
        return np.asarray(2.0 ** (-depth / self.norm), dtype=np.float64)

    def reasons(self, row: np.ndarray, limit: int = 2) -> list[tuple[str, float, float, float, bool]]:
        """The shape features of one source furthest outside (or nearest the edge of) their normal range:
        (name, value, low, high, outside), most unusual first, in readable units. Signal-to-noise is context,
        never a reason."""
        spread_high = np.maximum(self.high - self.median, 1e-9)
        spread_low = np.maximum(self.median - self.low, 1e-9)
        excess = np.maximum((row - self.high) / spread_high, (self.low - row) / spread_low)
        excess[FEATURES.index("log_snr")] = -np.inf
        order = np.argsort(-excess, kind="stable")
        chosen = [int(i) for i in order[:limit] if excess[i] > 0] or [int(order[0])]
        return [
            (
                FEATURES[i],
                shown(FEATURES[i], row[i]),
                shown(FEATURES[i], self.low[i]),
                shown(FEATURES[i], self.high[i]),
                bool(excess[i] > 0),
            )
            for i in chosen
        ]


def forest_arrays(forest: Any) -> dict[str, np.ndarray]:
    """Flatten a fitted scikit-learn IsolationForest into node arrays (all trees must use every feature)."""
    if forest.max_features != 1.0:
        raise ValueError("the exported forest must use all features in every tree")
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    norm = float(average_path_length(np.array([forest.max_samples_]))[0])
    for tree in forest.estimators_:
        t = tree.tree_
        depths = np.zeros(t.node_count)
        for node in range(t.node_count):  # children always come after their parent
            for child in (t.children_left[node], t.children_right[node]):
                if child >= 0:
                    depths[child] = depths[node] + 1
        leaf = t.children_left < 0
        features.append(np.where(leaf, -1, t.feature).astype(np.int32))
        thresholds.append(t.threshold.astype(np.float64))
        lefts.append(np.where(leaf, -1, t.children_left + offset).astype(np.int32))
        rights.append(np.where(leaf, -1, t.children_right + offset).astype(np.int32))
        values.append(np.where(leaf, depths + average_path_length(t.n_node_samples), 0.0))
        roots.append(offset)
        offset += t.node_count
    return {
        "tree_feature": np.concatenate(features),
        "tree_threshold": np.concatenate(thresholds),
        "tree_left": np.concatenate(lefts),
        "tree_right": np.concatenate(rights),
        "tree_value": np.concatenate(values),
        "tree_roots": np.array(roots, dtype=np.int32),
        "max_depth": np.array(max(int(e.tree_.max_depth) for e in forest.estimators_)),
        "norm": np.array(norm),
    }


def save(arrays: dict[str, np.ndarray]) -> bytes:
    """A reproducible `.npz`: arrays in sorted order, fixed timestamps, no pickled objects."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            np.lib.format.write_array(body, np.asarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, body.getvalue())
    return buffer.getvalue()


def load(data: bytes) -> AnomalyModel:
    """The model stored in `.npz` bytes (refusing pickled content)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    names = tuple(str(n) for n in arrays.pop("feature_names"))
    if names != FEATURES:
        raise ValueError(f"model features {names} do not match the code's {FEATURES}")
    return AnomalyModel(
        pca_mean=arrays["pca_mean"],
        pca_components=arrays["pca_components"],
        tree_feature=arrays["tree_feature"].astype(np.intp),
        tree_threshold=arrays["tree_threshold"],
        tree_left=arrays["tree_left"].astype(np.intp),
        tree_right=arrays["tree_right"].astype(np.intp),
        tree_value=arrays["tree_value"],
        tree_roots=arrays["tree_roots"].astype(np.intp),
        max_depth=int(arrays["max_depth"]),
        norm=float(arrays["norm"]),
        low=arrays["low"],
        median=arrays["median"],
        high=arrays["high"],
        threshold=float(arrays["threshold"]),
    )
