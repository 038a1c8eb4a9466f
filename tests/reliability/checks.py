"""Checks on a database file, shared by the reliability tests."""

from __future__ import annotations

import sqlite3
from html.parser import HTMLParser
from pathlib import Path

TEXT_COLUMNS = ("title", "author", "summary_text", "content_text", "categories")
HTML_COLUMNS = ("summary_html", "content_html")
EXECUTABLE_TAGS = {"script", "iframe", "object", "embed", "frame", "frameset", "applet", "base"}


class _Markup(HTMLParser):
    """Everything an HTML renderer would treat as markup, and what of it could run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.executable: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in EXECUTABLE_TAGS:
            self.executable.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.executable.append(f"{tag} {name}=")
            target = (value or "").strip().lower().replace("\t", "").replace("\n", "")
            if name in ("href", "src", "action", "formaction") and target.startswith(
                ("javascript:", "vbscript:", "data:text/html")
            ):
                self.executable.append(f"{tag} {name}={value}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.tags.append("<!--")

    def handle_decl(self, decl: str) -> None:
        self.tags.append("<!")


def markup_in(value: str) -> _Markup:
    parser = _Markup()
    parser.feed(value)
    parser.close()
    return parser


def executable_markup(db: Path) -> list[str]:
    """Stored values that would run script if rendered: none may exist.

    Text columns must hold no markup at all (an HTML renderer that forgot to
    escape them would see none); HTML columns may hold markup, but nothing that
    executes.
    """
    problems = []
    with sqlite3.connect(db) as conn:
        columns = ", ".join(("id", *TEXT_COLUMNS, *HTML_COLUMNS))
        for row in conn.execute(f"SELECT {columns} FROM items"):
            item_id, values = (
                row[0],
                dict(zip((*TEXT_COLUMNS, *HTML_COLUMNS), row[1:], strict=True)),
            )
            for column in TEXT_COLUMNS:
                found = markup_in(values[column] or "")
                if found.tags:
                    problems.append(f"item {item_id} {column}: markup {found.tags[:3]}")
            for column in HTML_COLUMNS:
                found = markup_in(values[column] or "")
                if found.executable:
                    problems.append(f"item {item_id} {column}: {found.executable[:3]}")
    return problems


def integrity_problems(db: Path) -> list[str]:
    """What must hold after any crash: a sound file, no item twice, no dangling link."""
    problems = []
    with sqlite3.connect(db, timeout=30) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            problems.append(f"integrity_check: {check[:3]}")
        twice = conn.execute(
            "SELECT feed_id, entry_key, count(*) FROM items GROUP BY feed_id, entry_key "
            "HAVING count(*) > 1"
        ).fetchall()
        if twice:
            problems.append(f"stored twice: {twice[:3]}")
        dangling = conn.execute(
            "SELECT id, story_id, parent_id FROM items WHERE story_id IS NULL "
            "OR story_id NOT IN (SELECT id FROM items) "
            "OR (parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM items))"
        ).fetchall()
        if dangling:
            problems.append(f"chains pointing at missing items: {dangling[:3]}")
        self_linked = conn.execute(
            "SELECT id FROM items WHERE parent_id = id OR (story_id != id AND parent_id IS NULL)"
        ).fetchall()
        if self_linked:
            problems.append(f"items linked to themselves or orphaned in a story: {self_linked[:3]}")
        cycles = conn.execute(
            "SELECT child.id FROM items AS child JOIN items AS parent "
            "ON parent.id = child.parent_id WHERE parent.parent_id = child.id"
        ).fetchall()
        if cycles:
            problems.append(f"items that are each other's parent: {cycles[:3]}")
    return problems
