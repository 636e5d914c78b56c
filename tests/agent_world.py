"""A small, real city for agent tests: simulated frames in a real lake, real resident products (a cloudy frame
graded by quality, a supernova found by transients), jobs in a real ledger, memories, a hypothesis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Ledger, parse_request
from astropolis.memory.hypotheses import HypothesisBook
from astropolis.memory.semantic import InMemoryStore
from astropolis.models.simulator import Defects, FieldSpec, Transient, render_pair, to_fits_bytes
from astropolis.tools.deps import ToolDeps
from astropolis.tools.residents import ResidentRunner
from astropolis.tools.sites import demo_sites

FIELD = FieldSpec(ra_deg=40.67, dec_deg=-0.01, seed=5)  # around M77
SUPERNOVA = Transient(ra_deg=40.68, dec_deg=-0.005, snr=60.0)


@cache
def frames() -> dict[str, bytes]:
    """FITS bytes of a reference, a new epoch with a supernova, and a cloudy frame (rendered once per run)."""
    reference, new = render_pair(FIELD, transients=[SUPERNOVA])
    _, cloudy = render_pair(FIELD, new_defects=Defects(clouds=0.9))
    return {"reference": to_fits_bytes(reference), "new": to_fits_bytes(new), "cloudy": to_fits_bytes(cloudy)}


@cache
def embedder():  # type: ignore[no-untyped-def]
    """The real MiniLM embedder, loaded once per test session."""
    from astropolis.memory.embedding import MiniLMEmbedder

    return MiniLMEmbedder()


@dataclass
class World:
    """The stores and the ids the tests ask about."""

    deps: ToolDeps
    clock: ManualClock
    reference: str
    new: str
    cloudy: str
    quality_product: str
    transients_product: str
    reobserve_job: int
    follow_up_job: int


def build_world(root: Path) -> dict[str, object]:
    """Ingest the frames, run the real residents and file their jobs into stores under `root`; return the ids."""
    data = frames()
    lake_clock = ManualClock(_observed(data["new"]) + timedelta(minutes=5))
    lake = Lake(root / "lake", clock=lake_clock)
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", clock=lake_clock)
    audit = AuditLog(f"sqlite:///{root / 'audit.db'}", clock=lake_clock)
    ids = {name: lake.ingest_bytes(blob, name=f"{name}.fits", site="lapalma").frame.id for name, blob in data.items()}
    runner = ResidentRunner(lake, ledger=ledger, audit=audit, clock=lake_clock, sites=demo_sites("fake"))
    quality = runner.run("quality", [ids["cloudy"]])
    transients = runner.run("transients", [ids["new"], ids["reference"]])
    for store_ in (lake, ledger, audit):
        store_.close()
    return {
        **ids,
        "now": lake_clock.now(),
        "quality_product": quality.product.id,
        "transients_product": transients.product.id,
        "reobserve_job": quality.jobs[0].id,
        "follow_up_job": transients.jobs[0].id,
    }


def open_world(template: Path, ids: dict[str, object], root: Path, *, memory: bool = True) -> World:
    """A private copy of a built world, opened (each test gets its own stores)."""
    import shutil

    shutil.copytree(template, root, dirs_exist_ok=True)
    lake_clock = ManualClock(ids["now"])  # type: ignore[arg-type]
    lake = Lake(root / "lake", clock=lake_clock)
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", clock=lake_clock)
    audit = AuditLog(f"sqlite:///{root / 'audit.db'}", clock=lake_clock)
    store = InMemoryStore(embedder()) if memory else None
    if store is not None:
        now = lake_clock.now()
        store.remember(
            "note",
            "Clouds over Cerro Pachon most evenings this week; prefer La Palma for M77.",
            actor="person:ana",
            created_at=now,
        )
        store.remember(
            "episode",
            "Night of 2026-11-24: NGC 253 monitoring completed at Siding Spring, 6 frames.",
            actor="night:demo",
            created_at=now,
        )
    book = HypothesisBook(f"sqlite:///{root / 'ledger.db'}", clock=lake_clock)
    deps = ToolDeps(
        lake=lake, ledger=ledger, audit=audit, sites=demo_sites("fake"), clock=lake_clock, memory=store, hypotheses=book
    )
    return World(
        deps=deps,
        clock=lake_clock,
        reference=str(ids["reference"]),
        new=str(ids["new"]),
        cloudy=str(ids["cloudy"]),
        quality_product=str(ids["quality_product"]),
        transients_product=str(ids["transients_product"]),
        reobserve_job=int(ids["reobserve_job"]),  # type: ignore[call-overload]
        follow_up_job=int(ids["follow_up_job"]),  # type: ignore[call-overload]
    )


def _observed(fits_bytes: bytes):  # type: ignore[no-untyped-def]
    import io

    from astropy.io import fits
    from astropy.time import Time

    header = fits.getheader(io.BytesIO(fits_bytes))
    return Time(header["DATE-OBS"], scale="utc").to_datetime(timezone=__import__("datetime").UTC)


def person_job(deps: ToolDeps, name: str, ra: float, dec: float, *, reason: str | None = None) -> int:
    """A job a person submitted (for the agent to read, and not to cancel)."""
    now = deps.clock.now()
    request = parse_request(
        {
            "kind": "observe",
            "target": {"name": name, "ra_deg": ra, "dec_deg": dec},
            "window": {"start": now.isoformat(), "end": (now + timedelta(hours=10)).isoformat()},
            "exposure": {"filter": "R", "exposure_s": 60, "count": 2},
            "reason": reason or f"monitor {name}",
            "origin": {"kind": "person", "ref": "ana"},
        }
    )
    return deps.ledger.submit(request, actor="person:ana").job.id
