"""Telescope drivers: one base class (preconditions, command ids, FITS), Alpaca, INDI and an in-process fake."""

from __future__ import annotations

from typing import TYPE_CHECKING

from astropolis.tools.drivers.base import Driver, Exposure, ExposureRequest, FrameStore, SiteStatus, WeatherReading
from astropolis.tools.drivers.journal import CommandJournal, CommandResult

if TYPE_CHECKING:
    from astropolis.lake.clock import Clock
    from astropolis.tools.sites import Site

__all__ = [
    "CommandJournal",
    "CommandResult",
    "Driver",
    "Exposure",
    "ExposureRequest",
    "FrameStore",
    "SiteStatus",
    "WeatherReading",
    "open_driver",
]


def open_driver(site: Site, *, journal: CommandJournal, frames: FrameStore, clock: Clock) -> Driver:
    """The driver of a site's backend (imported lazily: each backend pulls in its own client library)."""
    if site.driver.kind == "alpaca":
        from astropolis.tools.drivers.alpaca import AlpacaDriver

        return AlpacaDriver(site, journal=journal, frames=frames, clock=clock)
    if site.driver.kind == "indi":
        from astropolis.tools.drivers.indi import IndiDriver

        return IndiDriver(site, journal=journal, frames=frames, clock=clock)
    from astropolis.tools.drivers.fake import FakeDriver

    return FakeDriver(site, journal=journal, frames=frames, clock=clock)
