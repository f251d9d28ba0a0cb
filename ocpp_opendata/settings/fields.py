"""How a settings field is declared: default, help text, optional CLI flag and choices."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A settings field; `flag` overrides the CLI flag name derived from the field name."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})
