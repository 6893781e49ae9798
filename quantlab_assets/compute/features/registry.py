"""The feature registry: adding a feature is one function and one decorator line.

    @feature("ret_{w}d", windows=(1, 5, 21), family="price", lookback=lambda w: w, warmup=lambda w: w,
             description="Log return over the last {w} trading days.")
    def log_return(w: int) -> pl.Expr:
        return rolling_sum(pl.col(LOG_RETURN), w)

registers `ret_1d`, `ret_5d` and `ret_21d`. The function returns a polars expression (one output
column); the engine (compute.py) aliases it, adds `.over(...)` where its scope needs one and places it
in the single lazy query. A feature reads the helper columns of `base.py` and, through `inputs`, the
columns of other features.

Scopes (where the expression is evaluated):
  series         per instrument, on the frame sorted by (ticker, date): the expression uses the
                 per-instrument window helpers of `windows.py` (or `.over(TICKER_ID)` itself)
  row            elementwise on other features of the same row (e.g. a ratio of two volatilities)
  market         an aggregate over all instruments of one date; the engine adds `.over(date)`
  market_series  a time series over dates (e.g. a moving average of breadth): the function receives
                 its inputs as per-date series (one value per date, in date order) and returns one
  cross_section  per date across instruments; the engine adds `.over(date)`

A *hidden* feature (name starting with "_") is an intermediate that several features share: it is
computed once as a column, read by the features that list it in `inputs`, and never output (polars'
common-subexpression elimination does not reuse window expressions, so a quantity referenced twice
would otherwise be computed twice).

`lookback` is the number of trading-day rows of an instrument (including t) that the value at t reads;
the largest lookback sizes the history a partition must load (`FEATURE_LOOKBACK_DAYS`). `warmup` is the
number of leading null rows for an instrument with complete data whose first row has no return (the
cleaned bars' convention): for market scopes it counts dates of the panel instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

import polars as pl

Family = Literal["price", "technical", "microstructure", "cross_asset", "regime"]
Scope = Literal["series", "row", "market", "market_series", "cross_section"]
FAMILIES: tuple[str, ...] = ("price", "technical", "microstructure", "cross_asset", "regime")
SCOPES: tuple[str, ...] = ("series", "row", "market", "market_series", "cross_section")
# Where a scope may read its inputs from (scopes evaluated earlier in the query).
ALLOWED_INPUT_SCOPES: dict[str, tuple[str, ...]] = {
    "series": (),
    "row": ("series", "row"),
    "market": ("series", "row"),
    "market_series": ("market", "market_series"),
    "cross_section": ("series", "row", "market", "market_series", "cross_section"),
}

IntOrFunction = int | Callable[[int], int]


@dataclass(frozen=True)
class FeatureSpec:
    """One column and how to build it (see the module docstring for the fields' meaning)."""

    name: str
    description: str
    family: str
    scope: str
    lookback: int
    warmup: int
    build: Callable[..., pl.Expr] = field(repr=False, compare=False)
    inputs: tuple[str, ...] = ()
    # False where older rows still enter with geometrically decaying weights (Wilder's smoothing).
    finite_memory: bool = True
    # Eligible for the per-instrument preprocessing variants (cross-sectional ranks and market-wide
    # series are constant per date or already normalised).
    normalisable: bool = True
    hidden: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"feature {self.name!r}: family {self.family!r} is not one of {FAMILIES}")
        if self.scope not in SCOPES:
            raise ValueError(f"feature {self.name!r}: scope {self.scope!r} is not one of {SCOPES}")
        if self.lookback < 1 or self.warmup < 0:
            raise ValueError(f"feature {self.name!r}: lookback must be >= 1 and warmup >= 0")
        if "__" in self.name:
            raise ValueError(f"feature {self.name!r}: '__' is reserved for preprocessing suffixes")
        if self.hidden != self.name.startswith("_"):
            raise ValueError(f"feature {self.name!r}: hidden features, and only they, have names starting with '_'")


def _resolve(value: IntOrFunction, window: int | None) -> int:
    return int(value(window)) if callable(value) else int(value)


class FeatureRegistry:
    """An ordered set of FeatureSpecs; the order is the output column order."""

    def __init__(self, specs: Sequence[FeatureSpec] = ()) -> None:
        self._specs: dict[str, FeatureSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: FeatureSpec) -> FeatureSpec:
        if spec.name in self._specs:
            raise ValueError(f"feature {spec.name!r} is already registered")
        missing = [name for name in spec.inputs if name not in self._specs]
        if missing:
            raise ValueError(f"feature {spec.name!r} reads {missing}, which are not registered (register inputs first)")
        for name in spec.inputs:
            if self._specs[name].scope not in ALLOWED_INPUT_SCOPES[spec.scope]:
                raise ValueError(
                    f"feature {spec.name!r} ({spec.scope}) cannot read {name!r} ({self._specs[name].scope})"
                )
        self._specs[spec.name] = spec
        return spec

    def feature(
        self,
        name: str,
        *,
        family: str,
        description: str,
        lookback: IntOrFunction | None = None,
        warmup: IntOrFunction | None = None,
        scope: str = "series",
        windows: Sequence[int] | None = None,
        inputs: Sequence[str] = (),
        finite_memory: bool = True,
        normalisable: bool = True,
        hidden: bool = False,
    ) -> Callable[[Callable[..., pl.Expr]], Callable[..., pl.Expr]]:
        """Decorator registering `build` once, or once per window (`{w}` in the texts is the window).

        `lookback` and `warmup` are ints or functions of the window. Without them, a feature that reads
        other features takes the largest lookback/warmup of its inputs, and any other feature has
        warmup = lookback - 1 (a full window of rows). `{w}` in name, description and inputs is the
        window. The decorated function is returned unchanged, so it stays callable (tests build the same
        expression with other windows). A `market_series` function receives its inputs as per-date series
        expressions after the window: build(window, *inputs) or build(*inputs).
        """

        def register(build: Callable[..., pl.Expr]) -> Callable[..., pl.Expr]:
            for window in windows if windows is not None else (None,):
                spec_inputs = tuple(item.format(w=window) for item in inputs)
                read = [self._specs[item] for item in spec_inputs if item in self._specs]
                if lookback is not None:
                    spec_lookback = _resolve(lookback, window)
                elif read:
                    spec_lookback = max(spec.lookback for spec in read)
                else:
                    raise ValueError(f"feature {name!r}: a lookback is needed for a feature without inputs")
                if warmup is not None:
                    spec_warmup = _resolve(warmup, window)
                elif lookback is None and read:
                    spec_warmup = max(spec.warmup for spec in read)
                else:
                    spec_warmup = spec_lookback - 1
                self.add(
                    FeatureSpec(
                        name=name.format(w=window),
                        description=description.format(w=window),
                        family=family,
                        scope=scope,
                        lookback=spec_lookback,
                        warmup=spec_warmup,
                        build=partial(build, window) if window is not None else build,
                        inputs=spec_inputs,
                        finite_memory=finite_memory and all(spec.finite_memory for spec in read),
                        normalisable=normalisable and not hidden,
                        hidden=hidden,
                    )
                )
            return build

        return register

    def copy(self) -> FeatureRegistry:
        return FeatureRegistry(list(self._specs.values()))

    def without(self, *names: str) -> FeatureRegistry:
        """A copy without `names` (and without features that read them)."""
        dropped = set(names)
        kept: list[FeatureSpec] = []
        for spec in self._specs.values():
            if spec.name in dropped or dropped.intersection(spec.inputs):
                dropped.add(spec.name)
            else:
                kept.append(spec)
        return FeatureRegistry(kept)

    def replace(self, name: str, **changes: object) -> FeatureRegistry:
        """A copy in which feature `name` has `changes` (e.g. another `build`)."""
        return FeatureRegistry([replace(spec, **changes) if spec.name == name else spec for spec in self._specs.values()])

    def __getitem__(self, name: str) -> FeatureSpec:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[FeatureSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def names(self) -> list[str]:
        """Every registered name, hidden intermediates included, in registration order."""
        return list(self._specs)

    @property
    def output_names(self) -> list[str]:
        """The features a full computation outputs (hidden intermediates excluded)."""
        return [name for name, spec in self._specs.items() if not spec.hidden]

    def closure(self, names: Sequence[str]) -> list[FeatureSpec]:
        """`names` and every feature they read, in registry order."""
        unknown = [name for name in names if name not in self._specs]
        if unknown:
            raise KeyError(f"unknown features {unknown}")
        needed: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self._specs[name].inputs)
        return [spec for spec in self._specs.values() if spec.name in needed]

    def describe(self) -> pl.DataFrame:
        """One row per output feature: name, family, scope, lookback, warmup, description (docs, metadata)."""
        return pl.DataFrame(
            [
                {
                    "name": s.name, "family": s.family, "scope": s.scope, "lookback": s.lookback,
                    "warmup": s.warmup, "description": s.description,
                }
                for s in self._specs.values()
                if not s.hidden
            ],
            schema={"name": pl.String, "family": pl.String, "scope": pl.String, "lookback": pl.Int64,
                    "warmup": pl.Int64, "description": pl.String},
        )


REGISTRY = FeatureRegistry()
"""The lab's features: the family modules register into it when imported (compute.py imports them)."""

feature = REGISTRY.feature
