"""Which quality flags describe the moment and which describe the field, exposure or camera (no heavy imports:
the night loop reads these without loading the model)."""

from __future__ import annotations

# Conditions of the moment that spoil a difference image; a frame with none of them raised is a usable epoch.
CONDITION_FLAGS = frozenset({"clouds", "bad_focus", "tracking", "trail"})
# Properties of the field, the exposure or the camera: a frame whose only raised flags are these gets no
# reobserve request (a sparse field in a short exposure stays sparse).
PERSISTENT_FLAGS = frozenset({"low_star_count", "saturated", "hot_pixels"})
