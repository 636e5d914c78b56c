"""`astropolis residents …` end to end: list with weights and model cards, run on lake frames (stored once,
audited, jobs in the ledger), typed refusals with exit status 2, and a reproducible quick retrain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from astropolis.agent.cli import app
from astropolis.models.base import file_sha256
from astropolis.models.simulator import Defects, FieldSpec, Transient, render_pair, to_fits_bytes

runner = CliRunner()
FIELD = FieldSpec(ra_deg=40.67, dec_deg=-0.01, seed=5)


def run_json(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, f"{args} -> {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def _ingest(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(run_json("lake", "ingest", str(path), "--site", "lapalma")["ingested"][0]["frame"]["id"])


def test_list_names_every_resident_with_its_weights_and_model_card() -> None:
    rows = {row["name"]: row for row in run_json("residents", "list")["residents"]}
    assert set(rows) == {"quality", "transients", "anomaly"}
    for row in rows.values():
        card = Path(row["model_card"])
        assert card.is_file() and row["weights_sha256"] in card.read_text()
        weights = [p for p in card.parent.iterdir() if p.suffix in (".pt", ".npz")]
        assert row["weights_sha256"] in {file_sha256(p) for p in weights}


def test_run_stores_one_product_and_files_the_job(home: Path, tmp_path: Path) -> None:
    reference, new = render_pair(FIELD, transients=[Transient(ra_deg=40.68, dec_deg=-0.005, snr=60.0)])
    reference_id = _ingest(tmp_path, "ref.fits", to_fits_bytes(reference))
    new_id = _ingest(tmp_path, "new.fits", to_fits_bytes(new))
    first = run_json("residents", "run", "transients", new_id[:12], reference_id[:12])
    assert first["created"] is True and first["product"]["inputs"] == [new_id, reference_id]
    assert first["product"]["output"]["real_candidates"] >= 1
    # One observe job per candidate called real, most likely first: the injected transient, plus any residual of
    # M77 the network lets through (1.1.0 called the nucleus real at p 0.71, S/N 6; 1.2.0 gives it 0.47).
    kinds = [job["kind"] for job in first["jobs"]]
    assert kinds and set(kinds) == {"observe"} and len(kinds) == first["product"]["output"]["real_candidates"]
    best = first["product"]["output"]["candidates"][0]
    assert best["real"] and abs(best["ra_deg"] - 40.68) < 2e-4 and abs(best["dec_deg"] + 0.005) < 2e-4
    again = run_json("residents", "run", "transients", new_id, reference_id)
    assert again["created"] is False and again["product"]["id"] == first["product"]["id"] and again["jobs"] == []
    provenance = run_json("lake", "provenance", first["product"]["id"])
    assert {item["id"] for item in provenance["inputs"]} == {new_id, reference_id}
    job = run_json("jobs", "show", str(first["jobs"][0]["id"]))["job"]
    assert job["request"]["origin"] == {"kind": "product", "ref": first["product"]["id"]}
    tools = [entry["tool"] for entry in run_json("audit", "list")["entries"]]
    assert tools.count("resident.transients") == 2


def test_a_poor_frame_is_graded_and_asks_to_be_observed_again(home: Path, tmp_path: Path) -> None:
    _, cloudy = render_pair(FIELD, new_defects=Defects(clouds=0.9))
    frame_id = _ingest(tmp_path, "cloudy.fits", to_fits_bytes(cloudy))
    out = run_json("residents", "run", "quality", frame_id)
    report = out["product"]["output"]
    assert report["score"] < 50 and "clouds" in [f["name"] for f in report["flags"] if f["raised"]]
    assert [job["kind"] for job in out["jobs"]] == ["reobserve"]


def test_refusals_name_what_is_wrong_and_store_nothing(home: Path, tmp_path: Path) -> None:
    _, new = render_pair(FIELD)
    new_id = _ingest(tmp_path, "new.fits", to_fits_bytes(new))
    other = FieldSpec(ra_deg=120.0, dec_deg=30.0, seed=6)
    far_id = _ingest(tmp_path, "far.fits", to_fits_bytes(render_pair(other)[1]))
    cases = [
        (("residents", "run", "nosuch", new_id), "no resident named"),
        (("residents", "run", "transients", new_id), "takes 2 input(s)"),
        (("residents", "run", "transients", new_id, far_id), "overlap"),
        (("residents", "run", "quality", "sha256:" + "0" * 64), "no object"),
    ]
    for args, words in cases:
        error = run_json(*args, code=2)["error"]
        assert words in error["message"], (args, error)
    assert run_json("lake", "list", "--kind", "product")["products"] == []


@pytest.mark.slow
def test_quick_retrain_is_reproducible_from_its_seed(home: Path, tmp_path: Path) -> None:
    first = run_json("residents", "train", "quality", "--quick", "--out", str(tmp_path / "a"))
    second = run_json("residents", "train", "quality", "--quick", "--out", str(tmp_path / "b"))
    assert first["metrics"]["weights_sha256"] == second["metrics"]["weights_sha256"]
    assert (tmp_path / "a" / "quality.pt").read_bytes() == (tmp_path / "b" / "quality.pt").read_bytes()
    assert first["metrics"]["reproduces_committed_weights"] is False  # quick sets are not the committed run
