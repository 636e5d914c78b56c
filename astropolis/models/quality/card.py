"""Figures and tables for the quality resident's model card, made with the committed weights.

    python -m astropolis.models.quality.card [--out DIR]

examples.png: simulated frames with their score and raised flags; realframes.png and realframes.json: the
real frames of astropolis.models.quality.realframes with theirs.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from astropolis.models.quality.realframes import grade, load, real_frames
from astropolis.models.quality.resident import assess
from astropolis.models.simulator import Defects, FieldSpec, render

PACKAGE = Path(__file__).parent
FIELD = FieldSpec(ra_deg=250.42, dec_deg=20.0, seed=12)


def _show(ax: Any, data: np.ndarray, title: str) -> None:
    from astropy.visualization import ZScaleInterval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low, high = ZScaleInterval().get_limits(data)
    ax.imshow(data, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def examples(path: Path) -> list[dict[str, Any]]:
    """Simulated frames with one defect each, graded; write the figure and return the grades."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [
        ("clean", Defects()),
        ("clouds 0.5", Defects(clouds=0.5)),
        ("focus 2.5", Defects(focus=2.5)),
        ('tracking 6"', Defects(tracking_arcsec=6.0, tracking_angle_deg=120.0)),
        ("satellite", Defects(satellite_trails=1)),
        ("hot pixels + column", Defects(hot_pixels=60, hot_columns=1)),
    ]
    figure, axes = plt.subplots(2, 3, figsize=(11, 7.6))
    rows = []
    for ax, (label, defects) in zip(axes.ravel(), cases, strict=True):
        frame = render(FIELD, defects)
        graded = assess(frame.data, frame.header)
        flags = ", ".join(graded.raised) or "no flags"
        _show(ax, frame.data[128:384, 128:384], f"{label}: score {graded.score:g}\n{flags}")
        rows.append({"frame": label, "score": graded.score, "raised": graded.raised})
    figure.tight_layout()
    figure.savefig(path, dpi=56)
    plt.close(figure)
    return rows


def real(path: Path) -> list[dict[str, Any]]:
    """Real frames graded; write the figure and return the grades."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = real_frames()
    rows = [grade(frame) for frame in frames]
    columns = 4
    figure, axes = plt.subplots((len(frames) + columns - 1) // columns, columns, figsize=(13, 10))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, frame, row in zip(axes.ravel(), frames, rows, strict=False):
        data, _ = load(frame)
        step = max(1, max(data.shape) // 400)
        _show(
            ax,
            data[::step, ::step],
            f"{frame.label} ({frame.kind})\nscore {row['score']:g}: {', '.join(row['raised']) or 'no flags'}",
        )
    figure.tight_layout()
    figure.savefig(path, dpi=50)
    plt.close(figure)
    return rows


def main() -> None:
    """Write the figures and realframes.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PACKAGE)
    args = parser.parse_args()
    simulated = examples(args.out / "examples.png")
    grades = real(args.out / "realframes.png")
    (args.out / "realframes.json").write_text(json.dumps(grades, indent=2) + "\n")
    print(json.dumps({"simulated": simulated, "real": grades}, indent=2))


if __name__ == "__main__":
    main()
