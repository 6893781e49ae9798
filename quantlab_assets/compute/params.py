"""How a parameter dataclass field carries its description.

Every tunable number of the lab is a field of a frozen `*Params` / `*Config` dataclass in compute; the
Dagster run config is derived from those dataclasses (defs/config.py), and the description written here is
the one the launchpad shows next to the field. A field without `described` has no description there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any


def described(default: object, description: str) -> Any:
    """A dataclass field's default with the description the run config shows."""
    return field(default=default, metadata={"description": description})


def described_factory(factory: Callable[[], object], description: str) -> Any:
    """As `described`, for a default built by `factory` (a nested parameter dataclass)."""
    return field(default_factory=factory, metadata={"description": description})
