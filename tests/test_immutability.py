"""Nothing in the lake or the audit log can be changed, renamed or removed through any public path."""

from __future__ import annotations

import ast
import inspect
import re
import sqlite3
from pathlib import Path

import pytest
from helpers import frame_bytes
from typer.testing import CliRunner

import astropolis
from astropolis.agent.cli import app
from astropolis.lake import Lake
from astropolis.lake.blobs import BlobStore
from astropolis.memory import AuditLog, Ledger, parse_request

FORBIDDEN = re.compile(
    r"(delete|remove|drop|update|overwrite|rename|replace|truncate|purge|erase|edit|modify|rm$|"
    r"^mv$|^set_)",
    re.IGNORECASE,
)
PACKAGE = Path(astropolis.__file__).parent


def test_no_public_method_mutates_stored_things() -> None:
    for cls in (Lake, BlobStore, AuditLog):
        public = [name for name, _ in inspect.getmembers(cls) if not name.startswith("_")]
        offenders = [name for name in public if FORBIDDEN.search(name)]
        assert offenders == [], f"{cls.__name__} exposes {offenders}"
    # The ledger moves jobs by appending history; it has no way to edit or drop a request or a history entry.
    ledger_public = [name for name, _ in inspect.getmembers(Ledger) if not name.startswith("_")]
    assert [name for name in ledger_public if FORBIDDEN.search(name)] == []


def test_no_cli_command_mutates_stored_things() -> None:
    def walk(group: object, prefix: str = "") -> list[str]:
        names = []
        for info in getattr(group, "registered_commands", []):
            names.append(prefix + (info.name or info.callback.__name__))
        for sub in getattr(group, "registered_groups", []):
            names.extend(walk(sub.typer_instance, prefix + sub.name + " "))
        return names

    commands = walk(app)
    assert "lake ingest" in commands and "audit verify" in commands
    assert [c for c in commands if FORBIDDEN.search(c.split()[-1])] == []
    assert [
        c for c in commands if c.startswith("audit ") and c.split()[-1] not in {"list", "show", "head", "verify"}
    ] == []


def test_source_has_no_sql_update_or_delete_and_no_blob_removal() -> None:
    """Grep-level guarantee: our code never issues UPDATE/DELETE and only removes its own temp files."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for statement in re.findall(r"\b(UPDATE|DELETE)\s+(?:FROM\s+)?[a-z_]+\s+SET|\bDELETE\s+FROM\b", text):
            pytest.fail(f"{path} issues SQL {statement}")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"update", "delete"}:
                parent_src = ast.get_source_segment(text, node) or ""
                assert not parent_src.startswith(
                    ("_OBJECTS", "_FRAMES", "_PRODUCTS", "_EDGES", "_JOBS", "_EVENTS", "_LOG")
                ), f"{path}: {parent_src}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.get_source_segment(text, node.func.value) or ""
                call = f"{owner}.{node.func.attr}"
                if node.func.attr in {"unlink", "rmtree", "rename", "replace", "remove", "rmdir"} and (
                    owner in {"os", "shutil"} or node.func.attr in {"unlink", "rmtree", "rmdir"}
                ):
                    # The only removal allowed anywhere: the blob store dropping its own private temp files.
                    assert (path.name, call) in {("blobs.py", "os.remove")}, f"{path}:{node.lineno} calls {call}"


@pytest.mark.parametrize(
    "args",
    [
        ["lake", "delete", "sha256:00"],
        ["lake", "rm", "x"],
        ["lake", "update", "x"],
        ["lake", "rename", "a", "b"],
        ["audit", "delete", "1"],
        ["audit", "truncate"],
        ["jobs", "delete", "1"],
        ["jobs", "edit", "1"],
    ],
)
def test_cli_refuses_mutating_verbs(home: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "No such command" in result.output


def test_database_refuses_update_and_delete_on_every_table(tmp_path: Path, clock: object) -> None:
    lake = Lake(tmp_path / "lake")
    frame = lake.ingest_bytes(frame_bytes(), name="f").frame
    lake.put_product(
        resident="quality",
        version="1",
        weights_sha256="sha256:" + "0" * 64,
        inputs=[frame.id],
        output_kind="Q",
        output={"score": 1},
    )
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.submit(
        parse_request(
            {
                "kind": "observe",
                "target": {"ra_deg": 1, "dec_deg": 2},
                "window": {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
                "reason": "r",
                "origin": {"kind": "person", "ref": "p"},
            }
        ),
        actor="person:p",
    )
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    audit.append(actor="person:p", tool="t", arguments={})
    targets = {
        tmp_path / "lake" / "catalog.db": ["lake_objects", "lake_frames", "lake_products", "lake_edges"],
        tmp_path / "ledger.db": ["ledger_jobs", "ledger_events"],
        tmp_path / "audit.db": ["audit_log"],
    }
    for database, tables in targets.items():
        with sqlite3.connect(database) as connection:
            for table in tables:
                column = connection.execute(f"SELECT * FROM {table}").description[0][0]
                before = connection.execute(f"SELECT * FROM {table}").fetchall()
                assert before, table
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    connection.execute(f"UPDATE {table} SET {column} = {column}")
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    connection.execute(f"DELETE FROM {table}")
                assert connection.execute(f"SELECT * FROM {table}").fetchall() == before
    assert lake.verify().ok and audit.verify().ok


def test_bytes_and_hashes_unchanged_after_every_attempt(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    data = frame_bytes(seed=5)
    frame_id = lake.ingest_bytes(data, name="f").frame.id
    path = lake.blobs.path_for(frame_id)
    stat_before = path.stat()
    # Re-storing, re-ingesting under another name or site, and staging then discarding all leave it alone.
    lake.blobs.put_bytes(data)
    lake.ingest_bytes(data, name="renamed.fits", site="elsewhere")
    lake.blobs.stage_bytes(data).discard()
    stat_after = path.stat()
    assert (stat_after.st_ino, stat_after.st_mtime_ns, stat_after.st_size) == (
        stat_before.st_ino,
        stat_before.st_mtime_ns,
        stat_before.st_size,
    )
    assert lake.read(frame_id) == data and lake.frame(frame_id).source_name == "f"
