"""The residents' part of a night: quality on every frame as it lands, transients on each frame against its
field's reference (the first good epoch of the same field and filter), anomaly on every frame with the night's
top anomalies filed as review jobs at dawn. Their job requests go into the ledger, where the planner picks them
up the same night."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from astropolis.lake import Frame, Product
from astropolis.memory import Job
from astropolis.models.base import ProposedJob
from astropolis.models.errors import ResidentError
from astropolis.models.quality.flags import CONDITION_FLAGS
from astropolis.tools.residents import ResidentRunner

REFERENCE_RADIUS_DEG = 1.0 / 60.0  # dithers are arcseconds; a different field is arcminutes away


@dataclass
class Note:
    """One thing the residents did with a frame, for the night's story."""

    kind: str
    detail: str
    jobs: list[Job] = field(default_factory=list)


class NightResidents:
    """Runs the residents on a night's frames through a `ResidentRunner`."""

    def __init__(
        self,
        runner: ResidentRunner,
        *,
        names: Sequence[str] = ("quality", "transients", "anomaly"),
        anomalies_per_night: int = 3,
    ) -> None:
        self.runner = runner
        self.names = tuple(names)
        self.anomalies_per_night = anomalies_per_night
        self.anomaly_products: list[Product] = []
        self.products: dict[str, int] = {}  # resident name -> products made this night (new or found stored)

    def quality_of(self, frame: Frame) -> Any | None:
        """The stored quality output of a frame, if quality ran on it."""
        quality = self.runner.resident("quality")
        product = self.runner.lake.find_product(quality.name, quality.version, [frame.id])
        return None if product is None else product.output

    def is_good(self, frame: Frame) -> bool:
        """Usable as an epoch for difference imaging: quality ran on it and raised none of the conditions that
        spoil a subtraction (clouds, bad focus, tracking, a trail). A sparse or short frame is still a usable
        epoch: the transients resident aligns on few stars or on the WCS."""
        output = self.quality_of(frame)
        if output is None:
            return False
        raised = {flag["name"] for flag in output.get("flags", []) if flag.get("raised")}
        return not raised & CONDITION_FLAGS

    def reference_for(self, frame: Frame) -> Frame | None:
        """The field's reference: its first good earlier epoch in the same filter, from any site."""
        candidates = self.runner.lake.frames(cone=(frame.ra_deg, frame.dec_deg, REFERENCE_RADIUS_DEG))
        for candidate in candidates:  # oldest first
            if candidate.id == frame.id or candidate.filter != frame.filter:
                continue
            if candidate.observed_at is None or frame.observed_at is None or candidate.observed_at >= frame.observed_at:
                continue
            if self.is_good(candidate):
                return candidate
        return None

    def on_frame(self, frame_id: str) -> list[Note]:
        """Run every resident that applies to a new frame; returns what they did."""
        frame = self.runner.lake.frame(frame_id)
        notes: list[Note] = []
        for name in self.names:
            try:
                if name == "quality":
                    run = self.runner.run("quality", [frame.id])
                    self._count("quality")
                    output = run.product.output
                    flags = [flag["name"] for flag in output.get("flags", []) if flag.get("raised")]
                    notes.append(
                        Note(
                            "quality",
                            f"score {output['score']:.0f}" + (f" ({', '.join(flags)})" if flags else ""),
                            run.jobs,
                        )
                    )
                elif name == "transients":
                    reference = self.reference_for(frame)
                    if reference is None or not self.is_good(frame):
                        continue
                    run = self.runner.run("transients", [frame.id, reference.id])
                    self._count("transients")
                    output = run.product.output
                    notes.append(
                        Note(
                            "transients",
                            f"{output['detections']} detection(s) vs {reference.id[:19]}"
                            f" ({reference.site}), {output['real_candidates']} real",
                            run.jobs,
                        )
                    )
                elif name == "anomaly":
                    run = self.runner.run("anomaly", [frame.id], file_jobs=False)
                    self._count("anomaly")
                    self.anomaly_products.append(run.product)
            except ResidentError as error:
                notes.append(Note(f"{name}-refused", str(error)))
        return notes

    def _count(self, name: str) -> None:
        self.products[name] = self.products.get(name, 0) + 1

    def at_dawn(self) -> list[Note]:
        """File review jobs for the night's top anomalies (not one per frame)."""
        if "anomaly" not in self.names or not self.anomaly_products or self.runner.ledger is None:
            return []
        from astropolis.models.anomaly.resident import AnomalyReport, top_anomalies

        by_frame = {p.inputs[0]: p for p in self.anomaly_products}
        reports = [AnomalyReport.model_validate(p.output) for p in self.anomaly_products]
        notes = []
        for rank, pick in enumerate(top_anomalies(reports, self.anomalies_per_night), start=1):
            product = by_frame[pick.frame_id]
            source = pick.source
            proposal = ProposedJob(
                kind="review",
                priority=40,
                ra_deg=source.ra_deg,
                dec_deg=source.dec_deg,
                subject=pick.frame_id,
                name=f"anomaly {source.ra_deg:.5f} {source.dec_deg:+.5f}",
                reason=f"night's anomaly #{rank}: score {source.score:.3f} > {pick.threshold:.3f} "
                f"in {pick.frames} frame(s); {source.why}",
            )
            job = self.runner.file("anomaly", product, rank, proposal, self.runner.load(pick.frame_id))
            if job is not None:
                notes.append(Note("anomaly", proposal.reason, [job]))
        return notes
