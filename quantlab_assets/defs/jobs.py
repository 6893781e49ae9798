"""Jobs: the main job (the data layer end to end) and the daily refresh of the newest month."""

from __future__ import annotations

import dagster as dg

from quantlab_assets.defs.assets.data import GROUP as DATA_GROUP

# Everything partitioned by month x universe in the data group; `universe` is static-partitioned and
# is materialised by its own job (a job's assets must share one partitions definition).
bars_selection = dg.AssetSelection.groups(DATA_GROUP) - dg.AssetSelection.assets("universe")

main_job = dg.define_asset_job(
    "main_job",
    selection=bars_selection,
    description="Raw bars -> cleaned bars (+ quarantine) for a range of months of one universe.",
)
universe_job = dg.define_asset_job(
    "universe_job", selection=dg.AssetSelection.assets("universe"), description="Refresh the universe tables."
)
