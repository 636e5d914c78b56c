"""Offline visibility: altitudes of the Sun and of targets at a site, with astropy never reaching the network.

`configure_offline()` switches off every IERS and leap-second download and stops stale bundled tables from
raising; every function here calls it first.
"""

from __future__ import annotations

import functools
import warnings
from datetime import datetime
from typing import Any

import numpy as np

from astropolis.tools.sites import Site


@functools.cache
def configure_offline() -> None:
    """Make astropy use only the tables it ships: no downloads, no staleness errors."""
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None  # bundled tables may be old; never treat that as an error
    iers.conf.iers_degraded_accuracy = "ignore"  # times past the table: use predictions, do not raise
    iers.conf.remote_timeout = 0.0
    warnings.filterwarnings("ignore", category=iers.IERSStaleWarning)
    warnings.filterwarnings("ignore", message=".*leap-second.*", category=AstropyWarning)


def _altaz(site: Site, when: datetime | list[datetime] | np.ndarray) -> Any:
    from astropy.coordinates import AltAz
    from astropy.time import Time

    configure_offline()
    return AltAz(obstime=Time(when, scale="utc"), location=site.location())


def sun_altitude_deg(site: Site, when: datetime) -> float:
    """Altitude of the Sun's centre at `site` at `when`, degrees (no refraction)."""
    from astropy.coordinates import get_sun

    configure_offline()
    frame = _altaz(site, when)
    return float(get_sun(frame.obstime).transform_to(frame).alt.deg)


def target_altitude_deg(site: Site, ra_deg: float, dec_deg: float, when: datetime) -> float:
    """Altitude of an ICRS position at `site` at `when`, degrees (no refraction)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    configure_offline()
    frame = _altaz(site, when)
    return float(SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs").transform_to(frame).alt.deg)
