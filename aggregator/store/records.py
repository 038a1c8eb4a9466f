"""SQLite rows -> the frozen records the rest of the program sees."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aggregator.models import StoredItem
from aggregator.store.times import parse_time


def required_time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None, "column is NOT NULL"
    return parsed


def stored_item(row: dict[str, Any], tickers: tuple[str, ...] = ()) -> StoredItem:
    return StoredItem(
        id=row["id"],
        feed=row["feed_name"],
        publisher=row["publisher"],
        entry_key=row["entry_key"],
        url=row["url"],
        title=row["title"],
        author=row["author"],
        published=required_time(row["published"]),
        first_seen=required_time(row["first_seen"]),
        updated_at=required_time(row["updated_at"]),
        revisions=row["revisions"],
        summary_text=row["summary_text"] or row["content_text"],
        categories=tuple(json.loads(row["categories"])),
        story_id=row["story_id"] if row["story_id"] is not None else row["id"],
        parent_id=row["parent_id"],
        relation=row["relation"] or "original",
        similarity=row["similarity"],
        containment=row["containment"],
        lag_seconds=row["lag_seconds"],
        method=row["method"],
        story_size=row.get("story_size") or 1,
        tickers=tickers,
        canonical_url=row.get("canonical_url"),
        change_seq=row.get("change_seq") or 0,
    )
