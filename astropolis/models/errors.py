"""Errors residents raise on purpose. Each names the input and what is wrong; nothing is stored."""

from __future__ import annotations


class ResidentError(Exception):
    """Base of resident errors."""


class BadInput(ResidentError, ValueError):
    """An input a resident cannot judge: no WCS, not an image, NaNs, blank or saturated data, mismatched
    reference. No product is stored and nothing else is affected."""


class WeightsMismatch(ResidentError):
    """Committed weights do not hash to the sha256 the code expects (a corrupt or swapped file)."""
