"""The resident contract and runner: products keyed by (name, version, inputs), proposals become ledger jobs
citing the product, and bad inputs are refused with a typed error that stores nothing."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from helpers import frame_bytes

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, JobKind, Ledger
from astropolis.models.base import Context, FrameInput, Output, ProposedJob, Resident, parameters_sha256
from astropolis.models.errors import BadInput
from astropolis.tools.residents import ResidentRunner


class Brightness(Output):
    median: float
    stars: int


class CountingResident(Resident[Brightness]):
    """A test resident: median level and a crude star count; asks for a reobserve when it sees no star."""

    name = "brightness"
    version = "1"
    input_kind = "frame"
    output_model = Brightness
    calls = 0

    @property
    def weights_sha256(self) -> str:
        return parameters_sha256({"threshold": 50})

    def run(self, inputs: FrameInput) -> Brightness:
        CountingResident.calls += 1
        median = float(np.median(inputs.data))
        return Brightness(median=round(median, 3), stars=int((inputs.data > median + 50).sum()))

    def propose(self, output: Brightness, inputs: FrameInput, context: Context) -> Sequence[ProposedJob]:
        if output.stars:
            return ()
        return [ProposedJob(kind="reobserve", reason="no stars: clouds?", priority=60, exposure_s=30, filter="R")]


@pytest.fixture
def runner(tmp_path: Path, clock: ManualClock) -> ResidentRunner:
    lake = Lake(tmp_path / "lake", clock=clock)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", clock=clock)
    made = ResidentRunner(lake, ledger=ledger, audit=audit, clock=clock)
    made.add(CountingResident())
    return made


def test_second_run_returns_the_stored_product(runner: ResidentRunner) -> None:
    frame_id = runner.lake.ingest_bytes(frame_bytes(seed=1), name="a").frame.id
    CountingResident.calls = 0
    first = runner.run("brightness", [frame_id])
    again = runner.run("brightness", [frame_id[:12]])
    assert first.created and not again.created and again.product.id == first.product.id
    assert CountingResident.calls == 1
    assert [o.id for o in runner.lake.inputs_of(first.product.id)] == [frame_id]
    assert first.product.output_kind == "Brightness"
    assert runner.audit is not None and runner.audit.entries(limit=5)[0].tool == "resident.brightness"


def test_proposals_become_jobs_citing_the_product(runner: ResidentRunner) -> None:
    blank = frame_bytes(seed=2)  # the synthetic frame is pure noise: no pixel 50 above the median
    frame = runner.lake.ingest_bytes(blank, name="cloudy").frame
    run = runner.run("brightness", [frame.id])
    (job,) = run.jobs
    assert job.request.kind == JobKind.REOBSERVE and job.request.origin.ref == run.product.id
    assert run.product.id[:19] in job.request.reason and job.request.subject == frame.id
    assert job.request.target is not None and job.request.target.ra_deg == pytest.approx(frame.ra_deg)
    assert runner.run("brightness", [frame.id]).jobs == []  # a rerun files nothing new
    assert runner.ledger is not None and len(runner.ledger.jobs()) == 1


def _with(data: np.ndarray | None = None, *, wcs: bool = True) -> bytes:
    base = fits.open(io.BytesIO(frame_bytes(seed=3, wcs=wcs)))[0]
    header = base.header.copy()
    if not wcs:
        header["RA"], header["DEC"] = 250.0, 36.0
    buffer = io.BytesIO()
    fits.PrimaryHDU(base.data if data is None else data, header).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_with(wcs=False), "no celestial WCS"),
        (_with(np.full((64, 80), np.nan, dtype=np.float32)), "NaN"),
        (_with(np.zeros((64, 80), dtype=np.float32)), "every pixel is zero"),
        (_with(np.full((64, 80), 65535.0, dtype=np.float32)), "same value"),
        (_with(np.where(np.arange(64 * 80).reshape(64, 80) % 3, 65535.0, 1000.0).astype(np.float32)), "saturated"),
    ],
)
def test_bad_inputs_are_refused_and_store_nothing(runner: ResidentRunner, content: bytes, message: str) -> None:
    frame_id = runner.lake.ingest_bytes(content, name="bad").frame.id
    with pytest.raises(BadInput, match=message):
        runner.run("brightness", [frame_id])
    assert runner.lake.objects(kind="product") == []


def test_wrong_number_of_inputs(runner: ResidentRunner) -> None:
    frame_id = runner.lake.ingest_bytes(frame_bytes(seed=4), name="a").frame.id
    with pytest.raises(BadInput, match="takes 1 input"):
        runner.run("brightness", [frame_id, frame_id])


def test_one_follow_up_per_target_not_one_per_frame(runner: ResidentRunner) -> None:
    first = runner.lake.ingest_bytes(frame_bytes(seed=5), name="cloudy-1").frame
    second = runner.lake.ingest_bytes(frame_bytes(seed=6), name="cloudy-2").frame  # same pointing, new noise
    assert len(runner.run("brightness", [first.id]).jobs) == 1
    assert runner.run("brightness", [second.id]).jobs == []  # the first reobserve is still open
    far = runner.lake.ingest_bytes(frame_bytes(seed=7, ra=100.0, dec=-20.0), name="elsewhere").frame
    assert len(runner.run("brightness", [far.id]).jobs) == 1
