"""Telescope drivers: one base class (preconditions, command ids, FITS), Alpaca, INDI and an in-process fake."""

from astropolis.tools.drivers.base import Driver, Exposure, ExposureRequest, SiteStatus, WeatherReading
from astropolis.tools.drivers.journal import CommandJournal, CommandResult

__all__ = ["CommandJournal", "CommandResult", "Driver", "Exposure", "ExposureRequest", "SiteStatus", "WeatherReading"]
