"""The anomaly resident: committed weights, unusual objects outranking ordinary stars, defects set aside,
determinism, bad input, review jobs through the runner, and a night's top anomalies across frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import frame_bytes

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import JobKind, Ledger
from astropolis.models.anomaly.dataset import _defect_positions
from astropolis.models.anomaly.inject import Injected, inject
from astropolis.models.anomaly.model import AnomalyModel, average_path_length, forest_arrays
from astropolis.models.anomaly.resident import (
    MAX_REVIEWS,
    WEIGHTS,
    WEIGHTS_SHA256,
    AnomalyReport,
    AnomalyResident,
    AnomalySource,
    top_anomalies,
)
from astropolis.models.base import file_sha256
from astropolis.models.errors import BadInput, WeightsMismatch
from astropolis.models.simulator import Defects, FieldSpec, SimFrame, render, to_fits_bytes
from astropolis.models.simulator.render import frame_psf
from astropolis.tools.residents import ResidentRunner

FIELD = FieldSpec(ra_deg=60.0, dec_deg=30.0, seed=7, include_galaxies=False)


def _injected(kind: str, seed: int = 3, snr: float = 250.0) -> tuple[bytes, Injected]:
    """The test field with one unusual object of `kind` at a fixed seed, as FITS bytes."""
    frame = render(FIELD)
    data, (item,) = inject(
        frame.data,
        np.random.default_rng(seed),
        count=1,
        kinds=(kind,),
        snr_range=(snr, snr),
        psf=np.asarray(frame_psf(FIELD, Defects()).kernel),
        gain=FIELD.gain_e_per_adu,
        wcs=frame.wcs,
        saturation=FIELD.saturation_adu,
    )
    return to_fits_bytes(SimFrame(data=data, header=frame.header)), item


@pytest.fixture
def runner(tmp_path: Path, clock: ManualClock) -> Iterator[ResidentRunner]:
    """A runner with a lake and a ledger."""
    with Lake(tmp_path / "lake", clock=clock) as lake:
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
        yield ResidentRunner(lake, ledger=ledger, clock=clock)
        ledger.close()


def _report(runner: ResidentRunner, content: bytes, name: str = "frame") -> tuple[str, AnomalyReport]:
    frame_id = runner.lake.ingest_bytes(content, name=name).frame.id
    product = runner.run("anomaly", [frame_id]).product
    return frame_id, AnomalyReport.model_validate(product.output)


def test_committed_weights_match_their_hash_and_hold_no_pickle(tmp_path: Path) -> None:
    assert file_sha256(WEIGHTS) == WEIGHTS_SHA256 == AnomalyResident().weights_sha256
    with np.load(WEIGHTS, allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)
    tampered = tmp_path / "anomaly.npz"
    content = bytearray(WEIGHTS.read_bytes())
    content[-1] ^= 0xFF
    tampered.write_bytes(bytes(content))
    with pytest.raises(WeightsMismatch):
        _ = AnomalyResident(weights=tampered).model


def test_exported_forest_scores_exactly_like_scikit_learn() -> None:
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    data = rng.normal(size=(600, 4))
    forest = IsolationForest(n_estimators=20, max_samples=64, random_state=1).fit(data)
    arrays = forest_arrays(forest)
    model = AnomalyModel(
        pca_mean=np.zeros(1),
        pca_components=np.zeros((1, 1)),
        tree_feature=arrays["tree_feature"].astype(np.intp),
        tree_threshold=arrays["tree_threshold"],
        tree_left=arrays["tree_left"].astype(np.intp),
        tree_right=arrays["tree_right"].astype(np.intp),
        tree_value=arrays["tree_value"],
        tree_roots=arrays["tree_roots"].astype(np.intp),
        max_depth=int(arrays["max_depth"]),
        norm=float(average_path_length(np.array([64]))[0]),
        low=np.zeros(4),
        median=np.zeros(4),
        high=np.zeros(4),
        threshold=0.5,
    )
    probe = np.vstack([rng.normal(size=(50, 4)), rng.normal(6.0, 1.0, size=(5, 4))])
    np.testing.assert_allclose(model.score(probe), -forest.score_samples(probe), rtol=0, atol=1e-12)
    assert model.score(probe)[-5:].min() > model.score(probe)[:50].max() - 0.05


@pytest.mark.parametrize("kind", ["ring", "needle", "arc"])
def test_an_injected_unusual_object_outranks_every_ordinary_star(runner: ResidentRunner, kind: str) -> None:
    content, item = _injected(kind)
    _, report = _report(runner, content)
    first = report.top[0]
    assert np.hypot(first.x - item.x, first.y - item.y) < item.radius_px, report.top[:3]
    assert first.why
    if kind != "arc":  # arcs rank first but clear the review threshold in only a third of cases (model card)
        assert first.score >= report.threshold
    ordinary = [s for s in report.top if np.hypot(s.x - item.x, s.y - item.y) >= item.radius_px]
    assert ordinary and max(s.score for s in ordinary) < first.score
    assert report.sources_scored >= 15  # the field's stars were scored too


def test_the_same_frame_without_the_object_proposes_nothing(runner: ResidentRunner) -> None:
    _, report = _report(runner, to_fits_bytes(render(FIELD)))
    assert report.sources_scored >= 15 and report.above_threshold == 0
    assert runner.ledger is not None and runner.ledger.jobs() == []


def test_cosmic_rays_and_hot_pixels_are_set_aside_not_scored(runner: ResidentRunner) -> None:
    frame = render(FIELD, Defects(cosmic_rays=40, hot_pixels=30))
    _, report = _report(runner, to_fits_bytes(frame))
    assert report.set_aside["cosmic_ray"] >= 0.8 * 70
    truth = _defect_positions(frame.truth)
    for source in report.top:
        if source.score >= report.threshold:
            assert np.hypot(truth[:, 0] - source.x, truth[:, 1] - source.y).min() > 3.0
    assert report.above_threshold <= 1


def test_output_is_deterministic(tmp_path: Path, clock: ManualClock) -> None:
    content, _ = _injected("comet")
    outputs = []
    for run in range(2):
        with Lake(tmp_path / f"lake{run}", clock=clock) as lake:
            runner = ResidentRunner(lake, clock=clock)
            runner.add(AnomalyResident())  # a fresh instance: nothing cached between the runs
            frame_id = lake.ingest_bytes(content, name="comet").frame.id
            outputs.append(runner.resident("anomaly").run(runner.load(frame_id)).model_dump_json())
            assert runner.run("anomaly", [frame_id]).product.id == runner.run("anomaly", [frame_id]).product.id
    assert outputs[0] == outputs[1]


def test_bad_input_is_refused_and_a_blank_frame_scores_nothing(runner: ResidentRunner) -> None:
    small = runner.lake.ingest_bytes(frame_bytes(seed=1, shape=(40, 48)), name="small").frame.id
    with pytest.raises(BadInput, match="too small"):
        runner.run("anomaly", [small])
    assert runner.lake.objects(kind="product") == []
    _, report = _report(runner, frame_bytes(seed=2, shape=(96, 128)), name="blank")
    assert report.sources_scored == 0 and report.top == () and report.above_threshold == 0


def test_unusual_objects_become_review_jobs(runner: ResidentRunner) -> None:
    content, item = _injected("ring")
    frame_id = runner.lake.ingest_bytes(content, name="ring").frame.id
    run = runner.run("anomaly", [frame_id])
    assert 1 <= len(run.jobs) <= MAX_REVIEWS
    job = run.jobs[0]
    assert job.request.kind == JobKind.REVIEW and job.request.subject == frame_id
    assert job.request.origin.ref == run.product.id and "unusual source #1" in job.request.reason
    assert job.request.target is not None
    assert abs(job.request.target.ra_deg - item.ra_deg) * np.cos(np.radians(item.dec_deg)) * 3600 < 5.0
    assert abs(job.request.target.dec_deg - item.dec_deg) * 3600 < 5.0
    assert runner.run("anomaly", [frame_id]).jobs == []  # a rerun files nothing new
    assert runner.ledger is not None and len(runner.ledger.jobs()) == len(run.jobs)


def _source(rank: int, score: float, ra: float, dec: float) -> AnomalySource:
    return AnomalySource(
        rank=rank, x=10.0, y=10.0, ra_deg=ra, dec_deg=dec, score=score, snr=50.0, features={}, why="test"
    )


def _frame_report(frame_id: str, *sources: AnomalySource, threshold: float = 0.6) -> AnomalyReport:
    return AnomalyReport(
        frame_id=frame_id,
        psf_fwhm_px=3.0,
        sources_detected=len(sources),
        sources_scored=len(sources),
        set_aside={},
        threshold=threshold,
        above_threshold=sum(s.score >= threshold for s in sources),
        top=sources,
    )


def test_top_anomalies_ranks_across_frames_and_counts_one_object_once() -> None:
    a = _frame_report("sha256:" + "a" * 64, _source(1, 0.80, 10.0, 20.0), _source(2, 0.62, 10.1, 20.0))
    b = _frame_report("sha256:" + "b" * 64, _source(1, 0.75, 10.0 + 0.5 / 3600, 20.0), _source(2, 0.50, 11.0, 20.0))
    c = _frame_report("sha256:" + "c" * 64, _source(1, 0.90, 30.0, -5.0), threshold=0.95)
    night = top_anomalies([a, b, c], 5)
    assert [(n.frame_id[7], n.source.score, n.frames) for n in night] == [("a", 0.80, 2), ("a", 0.62, 1)]
    assert [n.source.score for n in top_anomalies([a, b, c], 5, above_threshold=False)] == [0.90, 0.80, 0.62, 0.50]
    assert len(top_anomalies([a, b, c], 1)) == 1 and top_anomalies([a], 0) == []
