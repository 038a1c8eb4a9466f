"""One exception root for everything the aggregator raises on purpose.

Subclasses also inherit the matching builtin so callers that only know the
standard library (``except ValueError``) still catch them.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error the aggregator raises deliberately."""

    exit_code = 1


class ConfigError(AggregatorError, ValueError):
    """The configuration file is missing, malformed or names an invalid value."""

    exit_code = 2


class UsageError(AggregatorError, ValueError):
    """A command-line argument names something that does not exist."""

    exit_code = 2


class FetchError(AggregatorError):
    """A feed could not be retrieved; stored on the feed, never raised out of a poll."""


class ParseError(AggregatorError, ValueError):
    """A body could not be read as a feed at all."""


class StorageError(AggregatorError):
    """The database could not be opened, read or written."""


class DatabaseLockedError(StorageError):
    """Another process held the database lock for longer than the busy timeout."""


class DatabaseUnusableError(StorageError):
    """The database file was deleted, replaced or made unwritable under an open store.

    Retrying cannot help, so a writer that sees it stops instead of carrying on.
    """
