"""From a (new, reference) pair of images with headers to candidates: the checks, subtraction and detection.

The resident, the training-set builder and the benchmark all go through `analyse`, so the network is trained
on exactly the candidates and triplets it will see in service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from astropolis.models.base import clipped_maximum
from astropolis.models.errors import BadInput
from astropolis.models.transients.detect import Detections, detect
from astropolis.models.transients.diff import Subtraction, exposure_ratio, subtract
from astropolis.models.transients.stamps import triplets

DEFAULT_SATURATION_ADU = 65535.0


@dataclass(frozen=True)
class Analysis:
    """A subtraction, its detections and their triplets."""

    subtraction: Subtraction
    detections: Detections
    stamps: np.ndarray  # (n, 4, S, S) float32: new, reference, difference, unconvolved new


def saturation_level(header: Any, data: np.ndarray) -> float:
    """SATURATE from the header; else the frame's maximum when several pixels share it exactly (a clipped full
    well: the ASCOM simulator's camera clips at 50,300 ADU and writes no SATURATE); else 65535 for 16-bit data,
    else the frame's maximum."""
    value = header.get("SATURATE") if header is not None else None
    if isinstance(value, int | float) and value > 0:
        return float(value)
    clipped = clipped_maximum(data)
    if clipped is not None:
        return clipped
    top = float(np.max(data))
    return DEFAULT_SATURATION_ADU if top <= DEFAULT_SATURATION_ADU else top


def filter_name(header: Any) -> str | None:
    """The FILTER keyword, stripped; None when absent or blank."""
    value = header.get("FILTER") if header is not None else None
    text = str(value).strip() if value is not None else ""
    return text or None


def check_pair(new_header: Any, ref_header: Any) -> None:
    """Refuse pairs taken through different filters (a colour difference is not a transient)."""
    new_filter, ref_filter = filter_name(new_header), filter_name(ref_header)
    if new_filter and ref_filter and new_filter.upper() != ref_filter.upper():
        raise BadInput(f"mismatched reference: taken in filter {ref_filter!r}, the new frame in {new_filter!r}")


def analyse(
    new_data: np.ndarray,
    new_header: Any,
    new_wcs: Any,
    ref_data: np.ndarray,
    ref_header: Any,
    ref_wcs: Any,
    *,
    threshold_sigma: float = 5.0,
    cap: int = 2000,
) -> Analysis:
    """Subtract, detect at ≥ `threshold_sigma`, and cut a stamp around each of (at most `cap`) candidates."""
    check_pair(new_header, ref_header)
    sub = subtract(
        new_data,
        new_wcs,
        ref_data,
        ref_wcs,
        new_saturation=saturation_level(new_header, new_data),
        ref_saturation=saturation_level(ref_header, ref_data),
        exposure_scale=exposure_ratio(new_header, ref_header),
    )
    found = detect(sub, threshold_sigma=threshold_sigma, cap=cap)
    stamps = triplets(sub.new, sub.reference, sub.difference, found.noise.raw, found.x, found.y, raw=sub.new_raw)
    return Analysis(sub, found, stamps)
