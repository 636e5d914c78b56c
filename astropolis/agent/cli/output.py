"""How the CLI speaks: rich tables for people, one JSON document for scripts, one-line errors for both."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from astropolis.lake.errors import LakeError
from astropolis.memory.errors import MemoryStoreError
from astropolis.settings import SettingsError
from astropolis.tools.errors import ToolError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # verify found corruption or tampering
EXIT_BAD_INPUT = 2  # a bad file, argument, id or transition

P = ParamSpec("P")
R = TypeVar("R")

# Off a terminal (logs, pipes) rich would squeeze tables into 80 columns; give them room instead.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay on one line


class CliInputError(ValueError):
    """An argument the CLI itself rejects (names the option and what is wrong)."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(document, default=_default, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, *, as_json: bool, code: int = EXIT_BAD_INPUT, kind: str = "error") -> typer.Exit:
    """Report an error in one line (or one JSON object) and return the Exit to raise."""
    if as_json:
        emit_json({"error": {"type": kind, "message": message}})
    else:
        stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def handles_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the closed set of domain errors into a clean one-line message and exit status 2."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return function(*args, **kwargs)
        except (LakeError, MemoryStoreError, CliInputError, SettingsError) as error:
            raise fail(str(error), as_json=as_json, kind=type(error).__name__) from None
        except ToolError as error:  # the tools' closed taxonomy: refused, driver/operator errors, bad arguments
            raise fail(str(error), as_json=as_json, kind=error.kind) from None

    return wrapper
