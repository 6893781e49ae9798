"""Column names shared by every frame in the lab.

Columns are addressed by these constants, never by position, so a rename happens in one place.
"""

from typing import Final

DATE: Final = "date"
TICKER: Final = "ticker"
OPEN: Final = "open"
HIGH: Final = "high"
LOW: Final = "low"
CLOSE: Final = "close"
ADJ_CLOSE: Final = "adj_close"
VOLUME: Final = "volume"
PRICE_COLUMNS: Final = (OPEN, HIGH, LOW, CLOSE)
BAR_COLUMNS: Final = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE, VOLUME)

# Provenance of a raw row: where it came from, so a rejected row can be traced to its file and line.
SOURCE: Final = "source"
SOURCE_FILE: Final = "source_file"
SOURCE_ROW: Final = "source_row"
PARSE_ERROR: Final = "parse_error"

# Cleaned bars.
LOG_RETURN: Final = "log_return"
IS_FILLED: Final = "is_filled"
# The close as traded (or as the vendor reports it), and adj_factor = adjusted close / that close:
# cleaned open/high/low/close are the traded prices times adj_factor, volume is divided by it.
RAW_CLOSE: Final = "raw_close"
ADJ_FACTOR: Final = "adj_factor"
IS_OUTLIER: Final = "is_outlier"
IS_MEMBER: Final = "is_member"

# Quarantine.
RULE: Final = "rule"
ACTION: Final = "action"
DETAIL: Final = "detail"

# Universe.
SECTOR: Final = "sector"
INDUSTRY: Final = "industry"
NAME: Final = "name"
# Point-in-time membership and the tradable set (compute/data/membership.py).
TRADABLE: Final = "tradable"
LISTED: Final = "listed"
DELISTED: Final = "delisted"
DELISTING_RETURN: Final = "delisting_return"

# Synthetic oracle.
PLANTED_SIGNAL: Final = "planted_signal"
# The price-observable planted expected log return over (t, t+1], known at the close of t.
PLANTED_EXPECTED_RETURN: Final = "planted_expected_return"
PLANTED_DEFECT: Final = "planted_defect"
