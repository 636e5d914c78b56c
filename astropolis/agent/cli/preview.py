"""A terminal preview of a FITS image: percentile-clipped asinh stretch drawn with half-block characters."""

from __future__ import annotations

import io
import warnings

import numpy as np
from rich.style import Style
from rich.text import Text


def image_array(fits_bytes: bytes, hdu_index: int) -> np.ndarray:
    """The 2-D pixel array of one HDU of a FITS file held in memory."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(fits_bytes), memmap=False) as hdul:
            data = np.asarray(hdul[hdu_index].data, dtype=np.float64)
    return data.reshape(data.shape[-2:])


def fits_header_text(fits_bytes: bytes, hdu_index: int) -> str:
    """The header of one HDU as 80-column card lines."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(fits_bytes), memmap=False) as hdul:
            return str(hdul[hdu_index].header.tostring(sep="\n", endcard=False)).rstrip()


def stretch(data: np.ndarray, width: int) -> np.ndarray:
    """Bin to about `width` columns (rows twice as dense, two pixels per character) and scale to 0..255."""
    step = max(1, int(np.ceil(data.shape[1] / width)))
    rows = data.shape[0] // step * step
    cols = data.shape[1] // step * step
    binned = np.nanmean(data[:rows, :cols].reshape(rows // step, step, cols // step, step), axis=(1, 3))
    finite = binned[np.isfinite(binned)]
    if finite.size == 0:
        return np.zeros_like(binned, dtype=np.uint8)
    low, high = np.percentile(finite, [1.0, 99.7])
    scaled = np.clip((np.nan_to_num(binned, nan=low) - low) / max(high - low, 1e-12), 0.0, 1.0)
    scaled = np.arcsinh(10.0 * scaled) / np.arcsinh(10.0)
    return (scaled * 255).astype(np.uint8)


_RAMP = " .:-=+*#%@"


def render(data: np.ndarray, width: int = 72, *, color: bool = True) -> Text:
    """Draw the image north up (FITS row 0 at the bottom): half-blocks in grey on a colour terminal,
    an ASCII brightness ramp elsewhere (logs, pipes)."""
    levels = stretch(data, width)[::-1]
    if levels.shape[0] % 2:
        levels = np.vstack([levels, np.zeros((1, levels.shape[1]), dtype=np.uint8)])
    text = Text()
    for top, bottom in zip(levels[0::2], levels[1::2], strict=True):
        if not color:
            mean = (top.astype(np.uint16) + bottom) // 2
            text.append("".join(_RAMP[int(v) * (len(_RAMP) - 1) // 255] for v in mean) + "\n")
            continue
        for upper, lower in zip(top, bottom, strict=True):
            text.append("▀", Style(color=f"rgb({upper},{upper},{upper})", bgcolor=f"rgb({lower},{lower},{lower})"))
        text.append("\n")
    return text
