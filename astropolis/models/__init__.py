"""The ML residents: one typed input from the lake → one frozen output, deterministic, with committed weights,
a training script and a model card each. May import `lake` (types only)."""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class". Imported lazily: torch and friends load only when a resident is used.
RESIDENTS: dict[str, str] = {
    "quality": "astropolis.models.quality.resident:QualityResident",
    "transients": "astropolis.models.transients.resident:TransientResident",
    "anomaly": "astropolis.models.anomaly.resident:AnomalyResident",
}


def load_resident(name: str, **options: Any) -> Any:
    """An instance of the resident called `name`."""
    if name not in RESIDENTS:
        raise KeyError(f"no resident named {name!r}; residents: {', '.join(RESIDENTS)}")
    module, _, cls = RESIDENTS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
