"""A seeded frame simulator for training and testing residents.

Stars from the real Hipparcos-2 catalogue plus a faint population seeded by sky position, OpenNGC galaxies as
Sérsic profiles, a Moffat PSF with the site's seeing, sky, flat field, bias, shot and read noise, and the FITS
header and TAN WCS our drivers write. Labelled defects (clouds, focus, tracking, satellite and aircraft trails,
hot pixels and columns, cosmic rays) and transients at a chosen S/N can be injected. Same spec, same pixels.
"""

from astropolis.models.simulator.camera import to_fits_bytes
from astropolis.models.simulator.fields import random_field
from astropolis.models.simulator.render import render, render_pair
from astropolis.models.simulator.spec import Defects, FieldSpec, SimFrame, Transient

__all__ = ["Defects", "FieldSpec", "SimFrame", "Transient", "random_field", "render", "render_pair", "to_fits_bytes"]
