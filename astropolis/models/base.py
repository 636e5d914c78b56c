"""The resident contract: one typed input from the lake → one frozen output, deterministically.

A resident is a small class with `name`, `version`, `weights_sha256`, `input_kind` and `run(input) ->
output`. Outputs are frozen pydantic models. Residents never touch the lake, the ledger or the clock: the
`ResidentRunner` (astropolis.models.runner) loads their inputs from the lake, stores their output as a
`Product` keyed by (name, version, input ids), and turns the job requests they propose into ledger jobs.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from astropolis.lake import Frame
from astropolis.models.errors import BadInput, WeightsMismatch

InputKind = Literal["frame", "frame_pair"]


class Output(BaseModel):
    """Base of every resident output: frozen, strict, JSON-serialisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")


O = TypeVar("O", bound=Output)  # noqa: E741 - the conventional name for an output type


@dataclass(frozen=True)
class FrameInput:
    """A frame as residents see it: catalog facts, pixel data (float64, FITS orientation) and header."""

    frame: Frame
    data: np.ndarray
    header: Any  # astropy.io.fits.Header

    @property
    def wcs(self) -> Any:
        """The frame's celestial WCS (astropy), checked when the input was loaded."""
        from astropy.wcs import WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return WCS(self.header, naxis=2).celestial


@dataclass(frozen=True)
class FramePair:
    """A new frame and the reference frame of the same field."""

    new: FrameInput
    reference: FrameInput


@dataclass(frozen=True)
class ProposedJob:
    """A job request a resident proposes; the runner adds window, origin, idempotency and submits it."""

    kind: Literal["observe", "reobserve", "review", "reprocess"]
    reason: str
    priority: int
    ra_deg: float | None = None
    dec_deg: float | None = None
    name: str | None = None
    filter: str | None = None
    exposure_s: float | None = None
    count: int = 1
    lane: Literal["queue", "rapid"] = "queue"
    subject: str | None = None
    other_site: bool = False  # confirm from a different site than the one that took the input frame


@dataclass(frozen=True)
class Context:
    """What a resident may know besides its input when proposing jobs (never when computing its output)."""

    product_id: str
    now: datetime
    site_threshold: float | None = None


class Resident(ABC, Generic[O]):
    """One ML member of the city."""

    name: ClassVar[str]
    version: ClassVar[str]
    input_kind: ClassVar[InputKind]
    output_model: ClassVar[type[Output]]

    @property
    @abstractmethod
    def weights_sha256(self) -> str:
        """sha256 of the weights (or of the fixed parameters) the resident runs with."""

    @abstractmethod
    def run(self, inputs: Any) -> O:
        """The output for one input; a pure function (same input, byte-identical output)."""

    def propose(self, output: O, inputs: Any, context: Context) -> Sequence[ProposedJob]:
        """Job requests this output calls for (default: none)."""
        return ()


def file_sha256(path: Path) -> str:
    """`sha256:<hex>` of a file."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def checked_weights(path: Path, expected: str) -> bytes:
    """The bytes of a committed weights file, refusing any that do not hash to `expected`."""
    data = Path(path).read_bytes()
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise WeightsMismatch(f"{path}: weights hash to {actual}, the code expects {expected}; retrain or restore")
    return data


def parameters_sha256(parameters: dict[str, Any]) -> str:
    """`sha256:` of a resident's fixed parameters (for residents without learned weights)."""
    from astropolis.lake.ids import canonical_json

    return "sha256:" + hashlib.sha256(canonical_json(parameters)).hexdigest()


CLIPPED_PIXELS = 3  # this many pixels at exactly a frame's maximum: the camera clipped there


def clipped_maximum(data: np.ndarray, pixels: int = CLIPPED_PIXELS) -> float | None:
    """The frame's maximum when at least `pixels` pixels share it exactly (a clipped full well, the level to
    use when the header gives no SATURATE), else None."""
    top = float(np.max(data))
    return top if np.count_nonzero(data == top) >= pixels else None


def rounded(value: float, digits: int = 6) -> float:
    """A float rounded so outputs are byte-identical across CPUs whose last bits differ."""
    if not math.isfinite(value):
        raise ValueError(f"non-finite value {value!r} in a resident output")
    return float(round(value, digits))


def load_frame(frame: Frame, fits_bytes: bytes) -> FrameInput:
    """Decode a catalogued frame's image HDU, refusing what no resident can judge (a typed `BadInput`)."""
    from astropy.io import fits

    source = frame.id[:19]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(fits_bytes), memmap=False) as hdul:
            hdu = hdul[frame.hdu_index]
            if hdu.data is None or getattr(hdu, "is_image", True) is False:
                raise BadInput(f"{source}: HDU {frame.hdu_index} is not an image")
            data = np.asarray(hdu.data, dtype=np.float64)
            header = hdu.header.copy()
    data = data.reshape(data.shape[-2:]) if data.ndim > 2 else data
    if data.ndim != 2:
        raise BadInput(f"{source}: image has {data.ndim} dimensions, need 2")
    finite = np.isfinite(data)
    if not finite.any():
        raise BadInput(f"{source}: every pixel is NaN or infinite")
    if finite.mean() < 0.99:
        raise BadInput(f"{source}: {100 * (1 - finite.mean()):.1f}% of pixels are NaN or infinite")
    values = data[finite]
    if np.all(values == 0):
        raise BadInput(f"{source}: every pixel is zero")
    if float(np.ptp(values)) == 0.0:
        raise BadInput(f"{source}: every pixel has the same value ({values[0]:g}): no image")
    high = float(values.max())
    if np.mean(values >= high) > 0.5:
        raise BadInput(f"{source}: more than half the pixels sit at the maximum {high:g}: saturated")
    probe = FrameInput(frame=frame, data=data, header=header)
    try:
        wcs = probe.wcs
    except Exception as error:
        raise BadInput(f"{source}: WCS cannot be read ({error})") from None
    if not wcs.has_celestial:
        raise BadInput(f"{source}: no celestial WCS (CTYPE1/2, CRVAL, CDELT or CD)")
    return probe


@contextmanager
def deterministic(threads: int = 1) -> Iterator[None]:
    """Run torch with `threads` threads and deterministic algorithms for a block, restoring both afterwards
    (the residents' determinism rule: same input, same bytes, on any CPU run)."""
    import torch

    previous_threads = torch.get_num_threads()
    previous_mode = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_mode)
        torch.set_num_threads(previous_threads)
