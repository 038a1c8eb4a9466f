"""aggregator: polls financial-news feeds and links syndicated copies of a story."""

from aggregator.errors import (
    AggregatorError,
    ConfigError,
    DatabaseLockedError,
    FetchError,
    ParseError,
    StorageError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "AggregatorError",
    "ConfigError",
    "DatabaseLockedError",
    "FetchError",
    "ParseError",
    "StorageError",
    "UsageError",
    "__version__",
]
