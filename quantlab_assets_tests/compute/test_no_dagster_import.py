"""quantlab_assets.compute is plain computation: importing any of it must not import dagster."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import quantlab_assets.compute as compute
    names = sorted(m.name for m in pkgutil.walk_packages(compute.__path__, compute.__name__ + "."))
    for name in names:
        importlib.import_module(name)
    print(json.dumps({
        "modules": names,
        "dagster": sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster.") or m.startswith("dagster_")),
        "outside_compute": sorted(
            m for m in sys.modules
            if m.startswith("quantlab_assets.") and not m.startswith("quantlab_assets.compute")
        ),
    }))
    """
)


def test_importing_every_compute_module_does_not_import_dagster() -> None:
    completed = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert {
        "quantlab_assets.compute.columns",
        "quantlab_assets.compute.schemas.base",
        "quantlab_assets.compute.storage",
        "quantlab_assets.compute.universe",
        "quantlab_assets.compute.data.cleaning",
        "quantlab_assets.compute.data.csv_source",
        "quantlab_assets.compute.data.packaged_sources",
        "quantlab_assets.compute.data.quality",
        "quantlab_assets.compute.data.raw",
        "quantlab_assets.compute.data.sources",
        "quantlab_assets.compute.data.synthetic",
    } <= set(report["modules"])
    assert report["dagster"] == [], f"dagster imported by compute code: {report['dagster']}"
    assert report["outside_compute"] == [], f"compute imports the dagster layer: {report['outside_compute']}"
