"""A small real city for agent evaluations and tests: simulated frames of the M77 field in a real lake (a
reference, a new epoch with a supernova, a cloudy frame), the real quality and transients residents' products,
and the jobs they filed, in a real ledger and audit log under one folder laid out as an ASTROPOLIS_HOME."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Ledger
from astropolis.models.simulator import Defects, FieldSpec, Transient, render_pair, to_fits_bytes
from astropolis.tools.residents import ResidentRunner
from astropolis.tools.sites import demo_sites

FIELD = FieldSpec(ra_deg=40.67, dec_deg=-0.01, seed=5)  # around M77
SUPERNOVA = Transient(ra_deg=40.68, dec_deg=-0.005, snr=60.0)


@cache
def frames() -> dict[str, bytes]:
    """FITS bytes of a reference, a new epoch with a supernova, and a cloudy frame (rendered once per process)."""
    reference, new = render_pair(FIELD, transients=[SUPERNOVA])
    _, cloudy = render_pair(FIELD, new_defects=Defects(clouds=0.9))
    return {"reference": to_fits_bytes(reference), "new": to_fits_bytes(new), "cloudy": to_fits_bytes(cloudy)}


def observed_at(fits_bytes: bytes) -> datetime:
    """DATE-OBS of a FITS file, UTC."""
    from astropy.io import fits
    from astropy.time import Time

    header = fits.getheader(io.BytesIO(fits_bytes))
    return Time(header["DATE-OBS"], scale="utc").to_datetime(timezone=UTC)


def build_city(root: Path) -> dict[str, Any]:
    """Ingest the frames, run the real residents and file their jobs into stores under `root`; return the ids
    (frame ids `reference`, `new`, `cloudy`; `quality_product`, `transients_product`; `reobserve_job`,
    `follow_up_job`) and `now`, the run clock's time (five minutes after the new epoch)."""
    data = frames()
    clock = ManualClock(observed_at(data["new"]) + timedelta(minutes=5))
    lake = Lake(root / "lake", clock=clock)
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", clock=clock)
    audit = AuditLog(f"sqlite:///{root / 'audit.db'}", clock=clock)
    ids = {name: lake.ingest_bytes(blob, name=f"{name}.fits", site="lapalma").frame.id for name, blob in data.items()}
    runner = ResidentRunner(lake, ledger=ledger, audit=audit, clock=clock, sites=demo_sites("fake"))
    quality = runner.run("quality", [ids["cloudy"]])
    transients = runner.run("transients", [ids["new"], ids["reference"]])
    for store in (lake, ledger, audit):
        store.close()
    return {
        **ids,
        "now": clock.now(),
        "quality_product": quality.product.id,
        "transients_product": transients.product.id,
        "reobserve_job": quality.jobs[0].id,
        "follow_up_job": transients.jobs[0].id,
    }
