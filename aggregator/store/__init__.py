"""SQLite storage. The only package that imports sqlite_utils (and sqlite3)."""

from aggregator.store.core import DEFAULT_BUSY_TIMEOUT, Store
from aggregator.store.queries import ItemFilter, PairStats, SearchHit, Stats
from aggregator.store.times import format_time, parse_time

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "ItemFilter",
    "PairStats",
    "SearchHit",
    "Stats",
    "Store",
    "format_time",
    "parse_time",
]
