"""The daily refresh: after each weekday's close, re-materialise the newest months of each universe.

The newest bar lands in the month in progress; the labels of the LOOKAHEAD_MONTHS months before it
gain the days of future they were waiting for. So each refresh is one single run over those months,
and older months are never rewritten.
"""

import datetime as dt

import dagster as dg

from quantlab_assets.defs.jobs import main_job
from quantlab_assets.defs.partitions import LOOKAHEAD_MONTHS, bars_key, month_partitions

# Universes refreshed every day. Packaged static data (sp500_sample) never changes, so it is not listed.
DAILY_UNIVERSES = ("synthetic",)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def refresh_requests(scheduled: dt.datetime, universes: tuple[str, ...] = DAILY_UNIVERSES) -> list[dg.RunRequest]:
    """One run per universe over the month containing `scheduled` and the LOOKAHEAD_MONTHS before it."""
    newest = month_partitions.get_partition_key_for_timestamp(scheduled.timestamp())
    keys = month_partitions.get_partition_keys(current_time=scheduled + dt.timedelta(days=31))
    oldest = keys[max(0, keys.index(newest) - LOOKAHEAD_MONTHS)]
    return [
        dg.RunRequest(
            run_key=f"{newest}|{name}|{scheduled.date()}",
            tags={RANGE_START: bars_key(oldest, name), RANGE_END: bars_key(newest, name)},
        )
        for name in universes
    ]


@dg.schedule(
    job=main_job, cron_schedule="30 22 * * 1-5", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Weekdays 22:30 UTC (after the US close): refresh the newest months of each daily universe."""
    return refresh_requests(context.scheduled_execution_time)
