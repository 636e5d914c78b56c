"""How long to expose when following a transient candidate up.

Light on purpose (no torch, no astropy): the job tools use it without loading the CNN.
"""

from __future__ import annotations

import math

FOLLOW_UP_SNR = 30.0  # a follow-up exposure aims at this S/N
LONGEST_S = 600.0
SHORTEST_S = 30.0  # unless the discovery frame was shorter: it already reached the S/N without saturating


def follow_up_exposure(discovery_s: float, snr: float) -> float:
    """Seconds per follow-up exposure: what reaches S/N 30 if the source keeps the discovery frame's S/N per
    exposure time (S/N ~ sqrt(t) on the sky's noise), never longer than 600 s and never shorter than 30 s or
    the discovery exposure, whichever is shorter. A bright candidate found in a short frame is followed up in
    frames as short: a 30 s floor saturated a mag 13.5 supernova that a 3 s frame had found at S/N 1300, and
    a saturated core is masked, so the follow-ups could not see it again. Rounded up to whole seconds below
    10 s, to 10 s above."""
    if not (math.isfinite(discovery_s) and discovery_s > 0):
        raise ValueError(f"discovery exposure must be a positive number of seconds, got {discovery_s!r}")
    wanted = discovery_s * (FOLLOW_UP_SNR / max(snr, 1.0)) ** 2
    step = 1.0 if wanted < 10.0 else 10.0
    return min(LONGEST_S, max(min(SHORTEST_S, discovery_s), step * math.ceil(wanted / step - 1e-9)))
