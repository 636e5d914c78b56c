"""A `gsc`-compatible star lookup over the demo StarCatalogue, so INDI's CCD simulator renders our sky.

INDI 1.9.9's `indi_simulator_ccd` draws a light frame by running, through popen, the Guide Star Catalog
tool with exactly this command line (C format `"gsc -c %8.6f %+8.6f -r %4.1f -m 0 %4.2f -n 3000"`):

    gsc -c RA DEC -r RADIUS -m MAG_MIN MAG_MAX -n MAX_STARS

RA and Dec are J2000 degrees of the field centre (the simulator converts the mount's JNow position
itself), RADIUS is arcminutes (half the chip diagonal), the magnitude range is 0 to the simulator's
limiting magnitude, and at most MAX_STARS lines are wanted. It reads each output line with
`sscanf(line, "%10s %f %f %f %f %f %d %d %4s %2s %f %d")` and draws a star for every line that yields
all 12 fields: id (at most 10 characters), RA and Dec (J2000 degrees), position error, magnitude,
magnitude error, band, class, plate, origin, distance from the centre (arcmin), direction (degrees).
Other lines (such as the real tool's column header, which we print too) are skipped.

libindi 1.9's JNow has a bug the simulator inherits: its nutation step (`INDI::ln_get_equ_nut`) takes the
sine and cosine of the obliquity in degrees as if it were radians, so `ObservedToJ2000` lands up to ~30"
from the true J2000 position of the mount's true apparent (JNow) pointing. Our driver sends the true
apparent place (astropy), as a real mount needs; with `--undo-libindi-nutation` this lookup moves the
field back to where the mount truly points, so the rendered sky is the real sky (measured against
libindidriver 1.9.9: the residual after the correction is below 0.2").

`write_script` puts an executable `gsc` in a folder (put that folder first on the simulator's PATH); it
runs this module with the catalogue's absolute path baked in, so it needs no environment variables.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from astropolis.tools.simulators.catalogue import StarCatalogue

HEADER = "  GSC-id     RA(2000)   Dec(2000) PosErr   Mag MagEr Bd C Plate Ob  Dist(')  PA"


@dataclass(frozen=True)
class Query:
    """One `gsc` cone query."""

    ra_deg: float
    dec_deg: float
    radius_arcmin: float
    mag_min: float = -99.0
    mag_max: float = 99.0
    limit: int = 3000
    undo_libindi_nutation: bool = False


def parse_args(argv: Sequence[str]) -> tuple[Path, Query]:
    """The catalogue path and the query from a `gsc` command line (plus our `--catalogue PATH`)."""
    parser = argparse.ArgumentParser(prog="gsc", description="Guide Star Catalog lookup over a StarCatalogue.")
    parser.add_argument("--catalogue", type=Path, required=True, help="StarCatalogue SQLite file.")
    parser.add_argument("-c", nargs=2, type=float, required=True, metavar=("RA", "DEC"), help="Centre, degrees.")
    parser.add_argument("-r", type=float, required=True, metavar="RADIUS", help="Radius, arcmin.")
    parser.add_argument("-m", nargs=2, type=float, default=(-99.0, 99.0), metavar=("MIN", "MAX"), help="Magnitudes.")
    parser.add_argument("-n", type=int, default=3000, metavar="N", help="At most N stars.")
    parser.add_argument("--undo-libindi-nutation", action="store_true", help="Undo libindi 1.9's JNow error.")
    args = parser.parse_args(list(argv))
    ra, dec = args.c
    return args.catalogue, Query(ra % 360.0, dec, args.r, args.m[0], args.m[1], args.n, args.undo_libindi_nutation)


def libindi_nutation_error(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """(dRA, dDec) in degrees by which libindi 1.9's JNow of a J2000 position exceeds the true apparent place:
    the first-order nutation terms evaluated with the obliquity's degrees read as radians, minus the right ones."""
    import erfa

    mjd = (when - datetime(1858, 11, 17, tzinfo=UTC)).total_seconds() / 86400.0  # UTC for TT: 70 s is nothing here
    d_psi, d_eps = erfa.nut80(2400000.5, mjd)
    eps = erfa.obl80(2400000.5, mjd) + d_eps
    bad = math.degrees(eps)  # the bug: degrees handed to sin/cos
    ra_now, dec_now = erfa.c2s(erfa.pnm80(2400000.5, mjd) @ erfa.s2c(math.radians(ra_deg), math.radians(dec_deg)))
    d_cos, d_sin = math.cos(bad) - math.cos(eps), math.sin(bad) - math.sin(eps)
    d_ra = (d_cos + d_sin * math.sin(ra_now) * math.tan(dec_now)) * d_psi
    d_dec = d_sin * math.cos(ra_now) * d_psi
    return math.degrees(d_ra), math.degrees(d_dec)


def lines(catalogue: StarCatalogue, query: Query, *, when: datetime | None = None) -> list[str]:
    """Output lines for a query: the header, then the brightest `limit` stars in the cone and magnitude range.
    With `undo_libindi_nutation`, stars come from around the true pointing, placed relative to the asked centre."""
    ra0, dec0 = query.ra_deg, query.dec_deg
    if query.undo_libindi_nutation:
        d_ra, d_dec = libindi_nutation_error(ra0, dec0, when or datetime.now(UTC))
        ra0, dec0 = (ra0 + d_ra) % 360.0, dec0 + d_dec
    stars = catalogue.cone(ra0, dec0, query.radius_arcmin / 60.0, max_mag=query.mag_max)
    stars = [star for star in stars if star.mag >= query.mag_min][: max(query.limit, 0)]
    out = [HEADER]
    for index, star in enumerate(stars):
        # Same standard coordinates about the asked centre as the star has about the true one.
        xi, eta = _standard(star.ra_deg, star.dec_deg, ra0, dec0)
        ra, dec = _from_standard(xi, eta, query.ra_deg, query.dec_deg)
        distance, direction = _distance_direction(query.ra_deg, query.dec_deg, ra, dec)
        out.append(
            f"AP{index:08d} {ra:11.6f} {dec:+11.6f}   0.2 {star.mag:6.2f}  0.20  0 0 AP00 00 "
            f"{distance:8.3f} {direction:3d}"
        )
    return out


def _standard(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Gnomonic standard coordinates (radians) of (ra, dec) about (ra0, dec0), all in degrees."""
    a, d, a0, d0 = map(math.radians, (ra, dec, ra0, dec0))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    xi = math.cos(d) * math.sin(a - a0) / cos_c
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    return xi, eta


def _from_standard(xi: float, eta: float, ra0: float, dec0: float) -> tuple[float, float]:
    """The inverse of `_standard`: (ra, dec) in degrees."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    denominator = math.cos(d0) - eta * math.sin(d0)
    ra = a0 + math.atan2(xi, denominator)
    dec = math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, denominator))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def _distance_direction(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, int]:
    """Angular distance (arcmin) and position angle east of north (whole degrees) from the centre."""
    ra0_r, dec0_r, ra_r, dec_r = map(math.radians, (ra0, dec0, ra, dec))
    cos_d = math.sin(dec0_r) * math.sin(dec_r) + math.cos(dec0_r) * math.cos(dec_r) * math.cos(ra_r - ra0_r)
    distance = math.degrees(math.acos(max(-1.0, min(1.0, cos_d)))) * 60.0
    angle = math.atan2(
        math.sin(ra_r - ra0_r),
        math.cos(dec0_r) * math.tan(dec_r) - math.sin(dec0_r) * math.cos(ra_r - ra0_r),
    )
    return distance, round(math.degrees(angle)) % 360


def write_script(
    directory: Path, catalogue_path: Path, *, undo_libindi_nutation: bool = False, python: str | None = None
) -> Path:
    """Write an executable `gsc` into `directory` that answers from `catalogue_path`; return its path."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "gsc"
    command = [python or sys.executable, "-m", "astropolis.tools.simulators.gsc"]
    command += ["--catalogue", str(Path(catalogue_path).absolute())]
    command += ["--undo-libindi-nutation"] if undo_libindi_nutation else []
    header = "#!/bin/sh\n# Generated by astropolis: gsc over a StarCatalogue.\n"
    script.write_text(f'{header}exec {shlex.join(command)} "$@"\n')
    script.chmod(0o755)
    return script


def main(argv: Sequence[str] | None = None) -> int:
    """Run one query and print its lines (exit status 0; 2 on bad arguments, 1 on a missing catalogue)."""
    path, query = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        catalogue = StarCatalogue(path)
    except FileNotFoundError as error:
        print(f"gsc: {error}", file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(lines(catalogue, query)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
