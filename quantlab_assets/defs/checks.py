"""The one way an asset withholds its output when a blocking check fails.

Dagster stores an output (through the IO manager) as soon as the asset yields it, before it sees any
check result, so a failed blocking check can stop downstream steps but cannot undo the write: the asset
itself must not yield the output then. Every asset with blocking checks ends the same way:

    def outputs() -> Outputs:
        write_checkpoint(...)            # anything published with the output happens here too
        yield dg.Output(frame, metadata=...)

    yield from outputs_then_checks(outputs, checks)

`outputs` runs only when every check passed, so a failed run leaves the stored output, its checkpoint
files and MLflow runs as the last good run left them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import dagster as dg

Outputs = Iterator[dg.Output]


def outputs_then_checks(
    outputs: Callable[[], Iterable[dg.Output]],
    checks: dg.AssetCheckResult | Sequence[dg.AssetCheckResult],
    *,
    advisory: Sequence[dg.AssetCheckResult] = (),
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The outputs of `outputs()` if every check in `checks` passed (else `outputs` is never called), then
    every check result. `advisory` checks (non-blocking, WARN severity) are reported but withhold nothing."""
    gating = [checks] if isinstance(checks, dg.AssetCheckResult) else list(checks)
    if all(check.passed for check in gating):
        yield from outputs()
    yield from gating
    yield from advisory
