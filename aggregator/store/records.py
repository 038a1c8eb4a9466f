"""SQLite rows -> the frozen records the rest of the program sees."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aggregator.models import Feed, StoredItem
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
        score=row.get("score"),
    )


def feed_record(row: dict[str, Any]) -> Feed:
    return Feed(
        id=row["id"],
        name=row["name"],
        publisher=row["publisher"],
        url=row["url"],
        config_url=row["config_url"],
        tags=tuple(json.loads(row["tags"] or "[]")),
        active=bool(row["active"]),
        in_config=bool(row["in_config"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        error_count=row["error_count"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        last_polled_at=parse_time(row["last_polled_at"]),
        next_check_at=parse_time(row["next_check_at"]),
        retry_after_until=parse_time(row["retry_after_until"]),
        bozo_warning=row["bozo_warning"],
        item_count=row.get("item_count") or 0,
        site_url=row.get("site_url"),
        body_hash=row.get("body_hash"),
    )
