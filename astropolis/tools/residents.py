"""Running residents on the lake: load their inputs, store their output as a product with provenance, and
turn the jobs they propose into ledger jobs whose reason cites the product. A second run on the same input
returns the stored product and adds nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from astropolis.lake import Lake, Product
from astropolis.lake.clock import Clock, SystemClock
from astropolis.memory import AuditLog, IdempotencyConflict, Job, Ledger, parse_request
from astropolis.models import RESIDENTS, load_resident
from astropolis.models.base import Context, FrameInput, FramePair, ProposedJob, Resident, load_frame
from astropolis.models.errors import BadInput, ResidentError

__all__ = ["RESIDENTS", "ResidentError", "ResidentRun", "ResidentRunner", "describe_residents", "train_resident"]
from astropolis.tools.sites import SiteRegistry

FOLLOW_UP_HOURS = 12.0


@dataclass
class ResidentRun:
    """What one run did: the product, whether it is new, and the jobs it created."""

    product: Product
    created: bool
    jobs: list[Job] = field(default_factory=list)


class ResidentRunner:
    """Runs residents against the lake (and, given a ledger, files their job requests)."""

    def __init__(
        self,
        lake: Lake,
        *,
        ledger: Ledger | None = None,
        audit: AuditLog | None = None,
        clock: Clock | None = None,
        sites: SiteRegistry | None = None,
        dedupe_radius_arcsec: float = 5.0,
    ) -> None:
        self.dedupe_radius_arcsec = dedupe_radius_arcsec
        self.lake = lake
        self.ledger = ledger
        self.audit = audit
        self.clock: Clock = clock or SystemClock()
        self.sites = sites
        self._residents: dict[str, Resident[Any]] = {}

    def add(self, resident: Resident[Any]) -> None:
        """Use this resident instance for its name (tests, or a resident built with options)."""
        self._residents[resident.name] = resident

    def resident(self, name: str) -> Resident[Any]:
        """The (cached) resident called `name`."""
        if name not in self._residents:
            self._residents[name] = load_resident(name)
        return self._residents[name]

    def load(self, frame_id: str) -> FrameInput:
        """A lake frame decoded for residents (raises BadInput for what none can judge)."""
        frame = self.lake.frame(frame_id)
        return load_frame(frame, self.lake.read(frame.id))

    def run(self, name: str, input_ids: Sequence[str], *, file_jobs: bool = True) -> ResidentRun:
        """Run resident `name` on lake objects `input_ids` (one frame, or new frame then reference); with
        `file_jobs=False` its proposals are left for the caller (`proposals`, `file`)."""
        resident = self.resident(name)
        ids = [self.lake.resolve(i) for i in input_ids]
        expected = 2 if resident.input_kind == "frame_pair" else 1
        if len(ids) != expected:
            raise BadInput(f"{name} takes {expected} input(s) ({resident.input_kind}), got {len(ids)}")
        if len(set(ids)) != len(ids):
            raise BadInput(f"{name}: the new frame and the reference are the same frame {ids[0][:19]}")
        started = time.perf_counter()
        existing = self.lake.find_product(resident.name, resident.version, ids)
        if existing is not None:
            self._audit(name, ids, started, result={"product_id": existing.id, "created": False, "jobs": []})
            return ResidentRun(existing, created=False)
        loaded = [self.load(i) for i in ids]
        inputs: FrameInput | FramePair = loaded[0] if expected == 1 else FramePair(new=loaded[0], reference=loaded[1])
        try:
            output = resident.run(inputs)
        except BadInput as error:
            self._audit(name, ids, started, error=str(error))
            raise
        stored = self.lake.put_product(
            resident=resident.name,
            version=resident.version,
            weights_sha256=resident.weights_sha256,
            inputs=ids,
            output_kind=type(output).__name__,
            output=output.model_dump(mode="json"),
        )
        jobs: list[Job] = []
        if stored.created and self.ledger is not None and file_jobs:
            context = Context(
                product_id=stored.product.id,
                now=self.clock.now(),
                site_threshold=self.threshold_of(loaded[0].frame.site),
            )
            for index, proposal in enumerate(resident.propose(output, inputs, context)):
                job = self.file(resident.name, stored.product, index, proposal, loaded[0])
                if job is not None:
                    jobs.append(job)
        self._audit(
            name,
            ids,
            started,
            result={"product_id": stored.product.id, "created": stored.created, "jobs": [j.id for j in jobs]},
        )
        return ResidentRun(stored.product, stored.created, jobs)

    def threshold_of(self, site: str) -> float | None:
        """The site's quality threshold from the registry (None: no registry or unknown site)."""
        if self.sites is None:
            return None
        try:
            return self.sites.get(site).quality_threshold
        except Exception:
            return None

    def _window_end(self, frame: FrameInput) -> Any:
        """A follow-up may run until the originating job's window closes, or FOLLOW_UP_HOURS from now."""
        now = self.clock.now()
        job_id = frame.header.get("JOBID", -1)
        if self.ledger is not None and isinstance(job_id, int) and job_id > 0:
            try:
                end = self.ledger.get(job_id).request.window.end
                if end > now + timedelta(minutes=10):
                    return end
            except Exception:
                pass
        return now + timedelta(hours=FOLLOW_UP_HOURS)

    def file(self, name: str, product: Product, index: int, proposal: ProposedJob, frame: FrameInput) -> Job | None:
        """Submit one proposal of resident `name` about `product`; None when the same target already has an
        open job, or this resident already had it observed (one follow-up per source, not one per frame)."""
        assert self.ledger is not None
        resident = self.resident(name)
        now = self.clock.now()
        observing = proposal.kind in ("observe", "reobserve")
        ra = proposal.ra_deg if proposal.ra_deg is not None else frame.frame.ra_deg
        dec = proposal.dec_deg if proposal.dec_deg is not None else frame.frame.dec_deg
        if self._duplicate(resident.name, proposal.kind, ra, dec):
            return None
        sites: list[str] = []
        if proposal.other_site and self.sites is not None:
            sites = [s for s in self.sites.names if s != frame.frame.site]
        request = parse_request(
            {
                "kind": proposal.kind,
                "target": {"name": proposal.name, "ra_deg": ra % 360.0, "dec_deg": dec},
                "subject": proposal.subject or product.inputs[0],
                "window": {"start": now.isoformat(), "end": self._window_end(frame).isoformat()},
                "exposure": {
                    "filter": proposal.filter,
                    "exposure_s": proposal.exposure_s or 60.0,
                    "count": proposal.count,
                }
                if observing
                else None,
                "constraints": {"sites": sites},
                "priority": proposal.priority,
                "lane": proposal.lane,
                "reason": f"{resident.name} {product.id[:19]}: {proposal.reason}"[:500],
                "origin": {"kind": "product", "ref": product.id},
                "idempotency_key": f"{resident.name}:{product.id}:{index}",
            }
        )
        try:
            return self.ledger.submit(request, actor=f"resident:{resident.name}").job
        except IdempotencyConflict:
            return None

    def _duplicate(self, name: str, kind: str, ra_deg: float, dec_deg: float) -> bool:
        assert self.ledger is not None
        radius = self.dedupe_radius_arcsec / 3600.0
        cos_dec = max(math.cos(math.radians(dec_deg)), 1e-6)
        for job in self.ledger.jobs():
            target = job.request.target
            if target is None or job.request.kind.value != kind:
                continue
            d_ra = ((target.ra_deg - ra_deg + 180.0) % 360.0 - 180.0) * cos_dec
            if math.hypot(d_ra, target.dec_deg - dec_deg) > radius:
                continue
            from_here = job.request.reason.startswith(f"{name} ")
            if not job.terminal or from_here:
                return True
        return False

    def _audit(
        self, name: str, ids: list[str], started: float, *, result: Any = None, error: str | None = None
    ) -> None:
        if self.audit is None:
            return
        self.audit.append(
            actor=f"resident:{name}",
            tool=f"resident.{name}",
            arguments={"inputs": ids},
            result=result,
            error=error,
            tier="propose",
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )


def describe_residents() -> list[dict[str, Any]]:
    """Every registered resident: name, version, input kind, output model, weights sha256, model card path."""
    import importlib
    from pathlib import Path

    rows = []
    for name, path in RESIDENTS.items():
        resident = load_resident(name)
        module = importlib.import_module(path.partition(":")[0])
        card = Path(module.__file__ or "").parent / "MODEL_CARD.md"
        rows.append(
            {
                "name": name,
                "version": resident.version,
                "input_kind": resident.input_kind,
                "output": resident.output_model.__name__,
                "weights_sha256": resident.weights_sha256,
                "model_card": str(card) if card.is_file() else None,
            }
        )
    return rows


def train_resident(name: str, *, seed: int, out_dir: Any = None, quick: bool = False) -> dict[str, Any]:
    """Retrain a resident from its seed with its own training script; returns its held-out metrics."""
    import importlib

    if name not in RESIDENTS:
        raise KeyError(f"no resident named {name!r}; residents: {', '.join(RESIDENTS)}")
    module = importlib.import_module(f"astropolis.models.{name}.train")
    return dict(module.train(seed=seed, out_dir=out_dir, quick=quick))
