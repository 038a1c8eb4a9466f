"""Builders for feeds and settings that tests write themselves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from aggregator.config import settings_from_mapping
from aggregator.models import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def rss(items: Sequence[dict[str, str]], *, title: str = "Test Desk", extra: str = "") -> bytes:
    """An RSS 2.0 document; each item dict may carry guid, title, link, date, body."""
    parts = []
    for item in items:
        guid = f'<guid isPermaLink="false">{item["guid"]}</guid>' if "guid" in item else ""
        date = f"<pubDate>{item['date']}</pubDate>" if "date" in item else ""
        parts.append(
            f"<item><title>{item.get('title', 'Untitled')}</title>"
            f"<link>{item.get('link', 'https://news.example/a')}</link>{guid}{date}"
            f"<description><![CDATA[{item.get('body', '<p>Body.</p>')}]]></description>"
            "</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example/</link>"
        f"<description>test</description>{extra}{''.join(parts)}</channel></rss>"
    ).encode()


def rfc822(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def market_items(count: int, *, start: int = 0) -> list[dict[str, str]]:
    return [
        {
            "guid": f"story-{n}",
            "title": f"Copper edges higher on day {n}",
            "link": f"https://news.example/markets/copper-{n}?utm_source=rss",
            "date": rfc822(datetime(2026, 11, 1 + n % 20, 9, n % 60, tzinfo=UTC)),
            "body": f"<p>Copper rose {n}.{n % 10} per cent on the London Metal Exchange.</p>",
        }
        for n in range(start, start + count)
    ]


def make_settings(
    tmp_path: Path, feeds: Sequence[dict[str, object]], **polling: object
) -> Settings:
    document: dict[str, object] = {
        "storage": {"path": str(tmp_path / "agg.db")},
        "polling": {"interval": "15m", "timeout": "5s", **polling},
        "feeds": list(feeds),
    }
    return settings_from_mapping(document, source=tmp_path / "config.toml", base_dir=tmp_path)
