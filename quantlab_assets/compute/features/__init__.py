"""Features: the research feature set of the lab, computed from cleaned bars in one lazy polars query."""
