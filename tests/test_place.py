"""Placement is pure: members and matches in, the links to write out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.dedup.features import identical
from aggregator.dedup.place import Edge, Match, place
from aggregator.models import Member

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SAME = identical(80, 3)


def member(id_: int, publisher: str, minutes: int, *, story: int | None = None, **kw) -> Member:
    when = T0 + timedelta(minutes=minutes)
    return Member(
        id=id_,
        feed_id=id_,
        publisher=publisher,
        published=when,
        first_seen=when,
        title="t",
        credits=frozenset(kw.get("credits", ())),
        story_id=story,
    )


def test_a_later_copy_hangs_under_the_item_it_came_from() -> None:
    wire = member(1, "Wire", 0, story=1)
    copy = member(2, "Mirror", 30)
    placement = place(copy, [Match(wire, SAME, 0.9)], {1: wire})
    assert placement.story == 1
    assert placement.merged == ()
    assert placement.edges == (Edge(copy, wire, "published", SAME, 0.9),)


def test_an_item_earlier_than_every_match_becomes_the_original_of_the_merged_story() -> None:
    summary = member(5, "Mirror", 40, story=5)
    trimmed = member(6, "Digest", 50, story=6)
    wire = member(7, "Wire", 0)
    placement = place(
        wire, [Match(summary, SAME, 0.8), Match(trimmed, SAME, 0.7)], {5: summary, 6: trimmed}
    )
    assert placement.story == 7
    assert set(placement.merged) == {5, 6}
    assert placement.edges[0] == Edge(wire, None, "published")
    # The former originals hang under the new one, with the verdict's scores.
    assert {
        (e.child.id, e.parent.id if e.parent else None, e.score) for e in placement.edges[1:]
    } == {
        (5, 7, 0.8),
        (6, 7, 0.7),
    }


def test_a_credit_wins_over_publish_order() -> None:
    wire = member(1, "Wire", 60, story=1)
    copy = member(2, "Mirror", 0, credits={"wire"})
    placement = place(copy, [Match(wire, SAME, 0.9)], {1: wire})
    assert placement.edges == (Edge(copy, wire, "attribution", SAME, 0.9),)


def test_a_story_that_began_before_the_new_item_keeps_its_original() -> None:
    # The new item is earlier than the copy it matched, but that copy's story began
    # with an item published earlier still: the link to it must be measured.
    root = member(1, "Wire", 0, story=1)
    copy = member(3, "Digest", 90, story=1)
    new = member(2, "Mirror", 30)
    placement = place(new, [Match(copy, SAME, 0.6)], {1: root})
    assert placement.story == 1
    assert placement.edges == (Edge(new, root, "published"),)
    assert placement.edges[0].comparison is None
