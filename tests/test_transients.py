"""The transients resident: committed weights, difference imaging finds what was injected and not the stars,
triplets, byte-identical reports, refusals of bad pairs that store nothing, observe jobs citing the product,
and a small held-out real/bogus sanity check."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from astropolis.lake import Frame, Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import JobKind, Ledger
from astropolis.models.base import FramePair, file_sha256, load_frame
from astropolis.models.errors import BadInput
from astropolis.models.simulator import FieldSpec, Transient, render_pair, to_fits_bytes
from astropolis.models.transients.cnn import CLASSES, build_model, parameter_count, probabilities
from astropolis.models.transients.dataset import pair_examples, run_pipeline
from astropolis.models.transients.followup import follow_up_exposure
from astropolis.models.transients.metrics import auc
from astropolis.models.transients.resident import WEIGHTS_PATH, WEIGHTS_SHA256, TransientResident
from astropolis.models.transients.stamps import STAMP_SIZE, triplets
from astropolis.tools.followups import confirm_in_lake, confirmation
from astropolis.tools.residents import ResidentRunner

RA, DEC = 280.0, -5.0  # a rich field near the Galactic plane: a few hundred stars in 320 x 320 px
TRANSIENT = Transient(RA + 0.004, DEC + 0.005, snr=20.0)


def _field(**changes: Any) -> FieldSpec:
    base: dict[str, Any] = {
        "ra_deg": RA,
        "dec_deg": DEC,
        "width": 320,
        "height": 320,
        "seed": 7,
        "exposure_s": 120.0,
        "include_galaxies": False,
    }
    return FieldSpec(**{**base, **changes})


@lru_cache(maxsize=4)
def _pair(snr: float | None = 20.0) -> tuple[Any, Any]:
    """(reference, new) of the rich field, with one transient of S/N `snr` (none for None)."""
    transients = () if snr is None else (Transient(TRANSIENT.ra_deg, TRANSIENT.dec_deg, snr=snr),)
    return render_pair(_field(), transients=transients)


@lru_cache(maxsize=1)
def _resident() -> TransientResident:
    return TransientResident()


def test_committed_weights_match_their_hash_and_size() -> None:
    assert file_sha256(WEIGHTS_PATH) == WEIGHTS_SHA256
    assert 10_000 <= parameter_count(build_model()) <= 100_000  # braai-sized
    assert WEIGHTS_PATH.stat().st_size < 400_000


def test_pipeline_finds_the_injected_transient() -> None:
    reference, new = _pair(20.0)
    truth = new.truth["transients"][0]
    found = run_pipeline(reference, new).detections
    distance = np.hypot(found.x - truth["x"], found.y - truth["y"])
    best = int(np.argmin(distance))
    assert distance[best] < 1.5
    assert 12.0 < found.snr[best] < 30.0  # S/N 20 in the new frame, diluted by the reference's noise


def test_pipeline_subtracts_the_stars_of_a_bare_pair() -> None:
    reference, new = _pair(None)
    stars = new.truth["stars"]
    assert len(stars["x"]) > 150
    found = run_pipeline(reference, new).detections
    assert found.total <= 10  # hundreds of stars, a few residuals next to the brightest at most
    bright = np.argsort(stars["mag"])[:100]
    left = [
        np.any(np.hypot(found.x - x, found.y - y) < 2.0)
        for x, y in zip(stars["x"][bright], stars["y"][bright], strict=True)
    ]
    assert sum(left) <= 5  # a failed alignment or PSF match would leave most of them


def test_triplets_are_centred_normalised_and_padded() -> None:
    image = np.zeros((40, 50), dtype=np.float32)
    image[20, 30] = 300.0
    stamps = triplets(image, image * 0.5, image, 10.0, np.array([30.2, 2.0]), np.array([19.6, 38.0]))
    assert stamps.shape == (2, 3, STAMP_SIZE, STAMP_SIZE) and stamps.dtype == np.float32
    centre = STAMP_SIZE // 2
    assert stamps[0, 0, centre, centre] == pytest.approx(np.arcsinh(10.0))  # 300 / (10 · 3)
    assert stamps[0, 1, centre, centre] == pytest.approx(np.arcsinh(5.0))
    assert np.all(stamps[1, :, :, : centre - 2] == 0.0)  # off the frame's left edge: zero padding
    raw = np.zeros_like(image)
    raw[20, 30] = 600.0
    four = triplets(image, image * 0.5, image, 10.0, np.array([30.2]), np.array([19.6]), raw=raw)
    assert four.shape == (1, 4, STAMP_SIZE, STAMP_SIZE)
    assert np.array_equal(four[:, :3], stamps[:1])  # the unconvolved frame only adds a channel
    assert four[0, 3, centre, centre] == pytest.approx(np.arcsinh(20.0))


def test_training_pairs_get_extra_transients_and_held_out_pairs_do_not() -> None:
    from astropolis.models.transients.dataset import simulate

    _, train_new = simulate("train", 3, size=256)
    _, test_new = simulate("test", 3, size=256)
    assert 5 <= len(train_new.truth["transients"]) <= 16
    assert 2 <= len(test_new.truth["transients"]) <= 8
    again = simulate("test", 3, size=256)[1]
    assert np.array_equal(again.data, test_new.data)  # a pure function of (split, index, size)


def _frame_bytes(frame: Any, *, data: np.ndarray | None = None, drop: tuple[str, ...] = (), **cards: Any) -> bytes:
    header = frame.header.copy()
    for key in drop:
        header.remove(key, ignore_missing=True)
    header.update(cards)
    buffer = io.BytesIO()
    fits.PrimaryHDU(frame.data if data is None else data, header).writeto(buffer)
    return buffer.getvalue()


@pytest.fixture
def runner(tmp_path: Path, clock: ManualClock) -> ResidentRunner:
    lake = Lake(tmp_path / "lake", clock=clock)
    made = ResidentRunner(lake, ledger=Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock), clock=clock)
    made.add(_resident())
    return made


def test_report_is_byte_identical_across_runs(runner: ResidentRunner) -> None:
    reference, new = _pair(20.0)
    new_id = runner.lake.ingest_bytes(to_fits_bytes(new), name="new").frame.id
    ref_id = runner.lake.ingest_bytes(to_fits_bytes(reference), name="ref").frame.id
    pair = FramePair(new=runner.load(new_id), reference=runner.load(ref_id))
    first = TransientResident().run(pair).model_dump_json()
    second = TransientResident().run(pair).model_dump_json()
    assert first == second
    assert '"candidates":[{' in first


def test_bare_pair_files_no_job(runner: ResidentRunner) -> None:
    reference, new = _pair(None)
    new_id = runner.lake.ingest_bytes(to_fits_bytes(new), name="new").frame.id
    ref_id = runner.lake.ingest_bytes(to_fits_bytes(reference), name="ref").frame.id
    run = runner.run("transients", [new_id, ref_id])
    assert run.created and run.product.output["real_candidates"] == 0 and run.jobs == []


def test_real_candidate_becomes_an_observe_job_citing_the_product(runner: ResidentRunner) -> None:
    reference, new = render_pair(_field(seed=8), transients=(Transient(RA - 0.003, DEC + 0.004, snr=40.0),))
    new_id = runner.lake.ingest_bytes(to_fits_bytes(new), name="new").frame.id
    ref_id = runner.lake.ingest_bytes(to_fits_bytes(reference), name="ref").frame.id
    run = runner.run("transients", [new_id, ref_id])
    report = run.product.output
    best = report["candidates"][0]
    assert best["real"] and best["label"] == "real"
    assert abs(best["ra_deg"] - (RA - 0.003)) < 2e-4 and abs(best["dec_deg"] - (DEC + 0.004)) < 2e-4
    assert run.jobs, "a real candidate must file an observe job"
    job = run.jobs[0].request
    assert job.kind == JobKind.OBSERVE and job.origin.ref == run.product.id
    assert run.product.id in job.reason and job.target is not None
    assert job.target.name is not None and job.target.name.startswith("AT candidate")
    assert abs(job.target.ra_deg - best["ra_deg"]) < 1e-6
    assert job.exposure is not None and job.exposure.filter == "R" and 30.0 <= job.exposure.exposure_s <= 600.0
    assert job.lane == ("rapid" if best["p_real"] >= 0.9 else "queue")
    assert runner.run("transients", [new_id, ref_id]).jobs == []  # a rerun stores and files nothing new


def test_a_faint_candidate_queues_even_when_called_real_with_confidence(runner: ResidentRunner) -> None:
    """The rapid lane needs S/N >= 10 as well as p(real) >= 0.9: a lone 5-sigma peak looks like a faint star."""
    from datetime import UTC, datetime

    from astropolis.models.base import Context
    from astropolis.models.transients.resident import TransientReport

    reference, new = _pair(20.0)
    new_id = runner.lake.ingest_bytes(to_fits_bytes(new), name="new").frame.id
    ref_id = runner.lake.ingest_bytes(to_fits_bytes(reference), name="ref").frame.id
    pair = FramePair(new=runner.load(new_id), reference=runner.load(ref_id))
    report = _resident().run(pair)
    best = report.candidates[0]
    assert best.real and best.p_real >= 0.9
    context = Context(product_id="sha256:" + "0" * 64, now=datetime(2026, 12, 1, tzinfo=UTC))
    for snr, lane in ((best.snr, "rapid" if best.snr >= 10 else "queue"), (9.9, "queue"), (10.0, "rapid")):
        changed = report.model_dump()
        changed["candidates"] = [{**changed["candidates"][0], "snr": snr}]
        (job,) = _resident().propose(TransientReport.model_validate(changed), pair, context)
        assert job.lane == lane, (snr, job.lane)


@pytest.mark.parametrize(
    ("discovery_s", "snr", "expected"),
    [
        (3.0, 1339.0, 3.0),  # the demo's supernova: a bright source in a short frame keeps the short exposure
        (120.0, 40.0, 70.0),  # 120 x (30/40)^2 = 67.5 s, up to the next 10 s
        (60.0, 300.0, 30.0),  # bright in a long frame: the 30 s floor
        (10.0, 5.0, 360.0),  # faint: 10 x 36
        (60.0, 5.0, 600.0),  # 2,160 s wanted: the 600 s ceiling
        (4.0, 35.0, 4.0),  # 2.9 s wanted, but never shorter than the discovery frame below the floor
        (8.0, 25.0, 20.0),  # 11.5 s wanted: 10 s steps from 10 s on
        (2.0, 60.0, 2.0),  # 0.5 s wanted: whole seconds, but not below the 2 s discovery frame
        (20.0, 60.0, 20.0),  # 5 s wanted, floor min(30, 20) = 20
    ],
)
def test_follow_up_exposure_reaches_snr_30_without_outlasting_a_short_discovery(
    discovery_s: float, snr: float, expected: float
) -> None:
    assert follow_up_exposure(discovery_s, snr) == pytest.approx(expected)


def test_follow_up_exposure_refuses_a_discovery_without_exposure_time() -> None:
    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(ValueError, match="discovery exposure"):
            follow_up_exposure(bad, 20.0)


def test_a_follow_up_is_confirmed_when_another_frame_sees_the_candidate_again(runner: ResidentRunner) -> None:
    """frame -> candidate -> observe job -> follow-up frames: 'confirmed' where the follow-up's own difference calls
    the candidate real again, 'not seen' where the source is gone, 'not compared' where transients never ran."""
    ra, dec = RA - 0.003, DEC + 0.004
    found = (Transient(ra, dec, snr=40.0),)
    reference, new = render_pair(_field(seed=8), transients=found)
    _, follow = render_pair(_field(seed=8), transients=found, shift_arcsec=7.0)
    _, gone = render_pair(_field(seed=8), shift_arcsec=11.0)
    ids = {
        name: runner.lake.ingest_bytes(to_fits_bytes(frame), name=name).frame.id
        for name, frame in (("ref", reference), ("new", new), ("follow", follow), ("gone", gone))
    }
    discovery = runner.run("transients", [ids["new"], ids["ref"]])
    target = discovery.jobs[0].request.target
    assert target is not None
    for name in ("follow", "gone"):
        runner.run("transients", [ids[name], ids["ref"]])
    seen = confirm_in_lake(runner.lake, target.ra_deg, target.dec_deg, [ids["follow"]])
    assert seen["verdict"] == "confirmed" and seen["real"] == seen["seen"] == seen["compared"] == 1
    assert seen["best"]["snr"] > 20 and seen["summary"].startswith("confirmed: real in 1, seen in 1 of 1")
    assert confirm_in_lake(runner.lake, target.ra_deg, target.dec_deg, [ids["gone"]])["verdict"] == "not seen"
    both = confirm_in_lake(runner.lake, target.ra_deg, target.dec_deg, [ids["gone"], ids["follow"]])
    assert both["verdict"] == "confirmed" and (both["compared"], both["real"]) == (2, 1)
    # The reference itself was never a new frame: no transients report, so nothing to judge.
    unjudged = confirm_in_lake(runner.lake, target.ra_deg, target.dec_deg, [ids["ref"]])
    assert unjudged["verdict"] == "not compared" and "none compared" in unjudged["summary"]
    # A re-detection 6" away is someone else; an unreal one near the target is 'seen, not called real'.
    far = {
        "candidates": [
            {"ra_deg": target.ra_deg, "dec_deg": target.dec_deg + 6 / 3600, "real": True, "p_real": 0.99, "snr": 50.0}
        ]
    }
    faint = {
        "candidates": [
            {"ra_deg": target.ra_deg, "dec_deg": target.dec_deg + 1 / 3600, "real": False, "p_real": 0.2, "snr": 5.5}
        ]
    }
    assert confirmation(target.ra_deg, target.dec_deg, [far])["verdict"] == "not seen"
    assert confirmation(target.ra_deg, target.dec_deg, [faint, None])["verdict"] == "seen, not called real"
    assert confirmation(target.ra_deg, target.dec_deg, [])["verdict"] == "no frames yet"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_wcs", "no celestial WCS"),
        ("nan", "NaN"),
        ("zero", "every pixel is zero"),
        ("saturated", "saturated"),
        ("elsewhere", "do not overlap"),
        ("scale", "pixel scale"),
        ("filter", "filter"),
    ],
)
def test_bad_pairs_are_refused_and_store_nothing(runner: ResidentRunner, case: str, message: str) -> None:
    reference, new = _pair(20.0)
    new_bytes, ref_bytes = to_fits_bytes(new), to_fits_bytes(reference)
    shape = new.data.shape
    if case == "no_wcs":
        new_bytes = _frame_bytes(new, drop=("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"))
    elif case == "nan":
        new_bytes = _frame_bytes(new, data=np.full(shape, np.nan, dtype=np.float32))
    elif case == "zero":
        new_bytes = _frame_bytes(new, data=np.zeros(shape, dtype=np.float32))
    elif case == "saturated":
        data = np.where(np.indices(shape).sum(axis=0) % 3, 65535.0, 1000.0).astype(np.float32)
        new_bytes = _frame_bytes(new, data=data)
    elif case == "elsewhere":
        ref_bytes = _frame_bytes(reference, CRVAL1=RA + 1.0)
    elif case == "scale":
        ref_bytes = _frame_bytes(
            reference, CDELT1=reference.header["CDELT1"] * 2, CDELT2=reference.header["CDELT2"] * 2
        )
    elif case == "filter":
        ref_bytes = _frame_bytes(reference, FILTER="V")
    new_id = runner.lake.ingest_bytes(new_bytes, name="new").frame.id
    ref_id = runner.lake.ingest_bytes(ref_bytes, name="ref").frame.id
    with pytest.raises(BadInput, match=message):
        runner.run("transients", [new_id, ref_id])
    assert runner.lake.objects(kind="product") == []
    assert runner.ledger is not None and runner.ledger.jobs() == []


def test_non_image_hdu_is_refused() -> None:
    buffer = io.BytesIO()
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    catalogued = Frame.model_construct(id="sha256:" + "0" * 64, hdu_index=1)  # a frame row pointing at the table
    with pytest.raises(BadInput, match="not an image"):
        load_frame(catalogued, buffer.getvalue())


def test_held_out_pairs_separate_real_from_bogus() -> None:
    sets = [pair_examples("test", i, size=384) for i in range(4)]
    stamps = np.concatenate([s.stamps for s in sets]).astype(np.float32)
    labels = np.concatenate([s.labels for s in sets])
    assert (labels == 0).sum() >= 5 and (labels != 0).sum() >= 20
    p = probabilities(_resident().model(), stamps)
    assert p.shape == (len(stamps), len(CLASSES)) and np.allclose(p.sum(axis=1), 1.0)
    assert auc(p[:, 0], labels == 0) > 0.9


def test_benchmark_times_and_finds_injected_transients() -> None:
    from astropolis.evals.bench_transients import imaging

    row = imaging(512, baseline=False, repeats=1)
    assert row["size"] == 512 and row["seconds"] > 0 and row["cpu_seconds"] > 0
    assert row["recall_snr10"] >= 0.85 and row["detections"] >= 20


def test_a_share_of_training_pairs_is_centred_on_a_bright_galaxy_outside_the_held_out_band() -> None:
    from astropolis.models.transients.dataset import BRIGHT_GALAXY, _in_holdout, bright_galaxies, simulate

    pool = bright_galaxies(BRIGHT_GALAXY["max_mag"], False)
    assert len(pool) > 300 and not any(_in_holdout(g.ra_deg) for g in pool)
    reference, _ = simulate("train", 1, size=256)  # pair 1 of the train split is a bright-galaxy pair
    field = reference.truth["field"]
    reach = 0.3 * 256 * field.pixel_scale_arcsec  # bright_galaxy_field: within a quarter frame of the centre
    cos_dec = np.cos(np.radians(field.dec_deg))
    near = [
        g
        for g in pool
        if 3600 * np.hypot(((g.ra_deg - field.ra_deg + 180) % 360 - 180) * cos_dec, g.dec_deg - field.dec_deg) < reach
    ]
    assert near and not _in_holdout(field.ra_deg)
    assert 2 <= len(simulate("test", 1, size=256)[1].truth["transients"]) <= 8  # held-out pairs are unchanged


def test_exposure_mismatched_pairs_train_and_hold_out_but_leave_the_test_split_alone() -> None:
    from astropolis.models.transients.dataset import EXPOSURES, SCINTILLATION, _in_holdout, simulate

    held = [simulate("exposures", i, size=128) for i in range(4)]
    for reference, new in held:
        field = new.truth["field"]
        ratio = new.header["EXPTIME"] / reference.header["EXPTIME"]
        low, high = EXPOSURES["ratio"]
        assert low <= max(ratio, 1 / ratio) <= high and _in_holdout(field.ra_deg)
        assert SCINTILLATION["range_1s"][0] <= field.scintillation_1s <= SCINTILLATION["range_1s"][1]
    train = [simulate("train", i, size=128) for i in range(16)]
    mismatched = sum(r.header["EXPTIME"] != n.header["EXPTIME"] for r, n in train)
    twinkling = sum(n.truth["field"].scintillation_1s > 0 for _, n in train)
    assert 0 < mismatched < 16 and 0 < twinkling < 16
    for i in range(4):
        reference, new = simulate("test", i, size=128)
        assert reference.header["EXPTIME"] == new.header["EXPTIME"] and new.truth["field"].scintillation_1s == 0


def test_without_a_common_star_the_flux_scale_is_the_exposure_ratio() -> None:
    from astropolis.models.transients.diff import exposure_ratio

    new, ref = fits.Header({"EXPTIME": 30.0}), fits.Header({"EXPTIME": 3.0})
    assert exposure_ratio(new, ref) == pytest.approx(10.0)
    assert exposure_ratio(new, fits.Header()) == 1.0  # no EXPTIME: equal photometry, as before
    assert exposure_ratio(new, fits.Header({"EXPTIME": 0.0})) == 1.0
    assert exposure_ratio(fits.Header({"EXPTIME": "long"}), ref) == 1.0


def test_a_clipped_full_well_is_the_saturation_level_without_a_saturate_keyword() -> None:
    from astropolis.models.transients.pipeline import DEFAULT_SATURATION_ADU, saturation_level

    data = np.random.default_rng(1).integers(500, 600, (64, 64)).astype(np.float64)
    data[10, 10] = 20_000.0  # one bright pixel: not a plateau
    assert saturation_level(fits.Header(), data) == DEFAULT_SATURATION_ADU
    data[30:32, 30:32] = 50_300.0  # a star's core clipped where the ASCOM simulator's camera clips
    assert saturation_level(fits.Header(), data) == 50_300.0
    assert saturation_level(fits.Header({"SATURATE": 60_000.0}), data) == 60_000.0  # the header's word first
