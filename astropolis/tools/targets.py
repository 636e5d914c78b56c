"""Target names resolved offline: Messier, NGC and IC designations and OpenNGC's common names (shipped in
`pyongc`), plus a small alias table for the names people actually type. Never Sesame, never the network."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from functools import lru_cache
from math import degrees

from pydantic import BaseModel, ConfigDict, Field

from astropolis.tools.errors import BadArguments

# Names people type that OpenNGC's common names do not spell that way.
ALIASES: dict[str, str] = {
    "andromeda": "M31",
    "andromeda galaxy": "M31",
    "crab": "M1",
    "crab nebula": "M1",
    "whirlpool": "M51",
    "orion nebula": "M42",
    "pinwheel": "M101",
    "pinwheel galaxy": "M101",
    "sombrero": "M104",
    "triangulum": "M33",
    "ring nebula": "M57",
    "dumbbell": "M27",
    "hercules cluster": "M13",
    "great hercules cluster": "M13",
    "cigar galaxy": "M82",
    "bodes galaxy": "M81",
    "bode's galaxy": "M81",
    "sculptor galaxy": "NGC253",
    "black eye galaxy": "M64",
    "whale galaxy": "NGC4631",
    "hockey stick": "NGC4656",
    "hockey stick galaxy": "NGC4656",
    "centaurus a": "NGC5128",
    "lagoon nebula": "M8",
    "eagle nebula": "M16",
}
_DESIGNATION = re.compile(r"^\s*(M|MESSIER|NGC|IC)\s*0*(\d{1,4})\s*([A-Z]?)\s*$", re.I)


class ResolvedTarget(BaseModel):
    """A named target with its ICRS position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Designation as people write it, e.g. 'M51' or 'NGC 4656'.")
    catalogue_name: str = Field(description="OpenNGC name, e.g. 'NGC5194'.")
    ra_deg: float = Field(description="ICRS right ascension, degrees.")
    dec_deg: float = Field(description="ICRS declination, degrees.")
    object_type: str = Field(description="OpenNGC object type, e.g. 'Galaxy'.")
    common_names: str | None = Field(description="OpenNGC common names, if any.")
    hubble_type: str | None = Field(description="Hubble type for galaxies, if known.")
    source: str = Field(description="'OpenNGC' or 'OpenNGC via alias'.")


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, tuple], dict[str, str], dict[str, str]]:
    """OpenNGC rows by name, Messier number -> name, and lower-case common name -> name (read once)."""
    from pyongc import DBPATH

    by_name: dict[str, tuple] = {}
    messier: dict[str, str] = {}
    common: dict[str, str] = {}
    with closing(sqlite3.connect(f"file:{DBPATH}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            "SELECT o.name, o.ra, o.dec, t.typedesc, o.commonnames, o.hubble, o.messier FROM objects o "
            "JOIN objTypes t ON o.type = t.type WHERE o.ra IS NOT NULL"
        ).fetchall()
    for row in rows:
        name = row[0]
        by_name[name] = row
        if row[6]:
            messier.setdefault(str(int(row[6])), name)
        for common_name in (row[4] or "").split(","):
            if common_name.strip():
                common.setdefault(common_name.strip().lower(), name)
    return by_name, messier, common


def _display(catalogue_name: str, messier: str | None) -> str:
    if messier:
        return f"M{int(messier)}"
    match = re.match(r"^(NGC|IC)0*(\d+)(.*)$", catalogue_name)
    return f"{match.group(1)} {match.group(2)}{match.group(3)}" if match else catalogue_name


def resolve_name(text: str) -> ResolvedTarget:
    """The position of a catalogue name or common name; `BadArguments` naming it when it is not known."""
    by_name, messier, common = _table()
    query = " ".join(text.strip().split())
    via = "OpenNGC"
    key: str | None = None
    alias = ALIASES.get(query.lower()) or ALIASES.get(query.lower().removeprefix("the "))
    if alias:
        query, via = alias, "OpenNGC via alias"
    match = _DESIGNATION.match(query)
    if match:
        kind, number, suffix = match.group(1).upper(), int(match.group(2)), match.group(3).upper()
        if kind in ("M", "MESSIER"):
            key = messier.get(str(number))
        else:
            key = f"{kind}{number:04d}{suffix}"
    else:
        key = common.get(query.lower()) or common.get(query.lower().removeprefix("the "))
    if key is None or key not in by_name:
        raise BadArguments(f"{text.strip()[:60]!r} is not in OpenNGC (try an M, NGC or IC number, or coordinates)")
    name, ra, dec, type_desc, common_names, hubble, messier_number = by_name[key]
    return ResolvedTarget(
        name=_display(name, messier_number),
        catalogue_name=name,
        ra_deg=round(degrees(ra) % 360.0, 6),  # OpenNGC's database keeps radians
        dec_deg=round(degrees(dec), 6),
        object_type=str(type_desc),
        common_names=common_names or None,
        hubble_type=hubble or None,
        source=via,
    )


@lru_cache(maxsize=1)
def known_names() -> tuple[str, ...]:
    """Every alias and OpenNGC common name (lower case), longest first, for spotting targets in text."""
    _, _, common = _table()
    return tuple(sorted({*ALIASES, *common}, key=lambda n: (-len(n), n)))
