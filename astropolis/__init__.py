"""Astropolis: a small network of robotic telescopes run as one instrument."""

__version__ = "0.1.0"
