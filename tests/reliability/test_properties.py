"""Property tests: the pure functions hold their promises on any input hypothesis finds."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.dedup.features import compare
from aggregator.dedup.index import CandidateIndex, band_layout
from aggregator.dedup.place import Match, choose_parent
from aggregator.dedup.prepare import prepare_body
from aggregator.models import Comparison, DedupSettings, Member
from aggregator.schedule import BACKOFF_CAP, JITTER_SHARE, next_check_at
from aggregator.text import (
    canonical_url,
    html_to_text,
    normalize_space,
    shingles,
    single_line,
    tokens,
    word_set,
)
from aggregator.text.markup import _CONTROLS, _SPACE_RUNS, _plain_markup_text, _TextExtractor
from aggregator.text.tickers import _COIN_FIRST_WORDS, _COIN_NAME
from aggregator.text.tokens import _ASCII_TOKEN, _TOKEN, _WORD_RUN, encoded_shingles
from tests.verdicts import is_copy

SOAK = bool(os.environ.get("AGGREGATOR_SOAK"))
EXAMPLES = settings(
    max_examples=2000 if SOAK else 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

url_parts = st.sampled_from(
    ["http://", "https://", "HTTP://", "ftp://", "", "//", "javascript:", "mailto:", "[", "%"]
)
urls = st.one_of(
    st.text(),
    st.builds(
        lambda scheme, host, rest: scheme + host + rest,
        url_parts,
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        st.text(max_size=60),
    ),
    st.from_regex(r"https?://[A-Za-z0-9.\-\[\]:]{1,30}(:\d{1,6})?(/[^#?]*)?(\?[^#]*)?(#.*)?"),
)
# HTML-ish text: fragments of tags, entities and double-escaped markup among any unicode.
html_pieces = st.sampled_from(
    [
        "<p>", "</p>", "<script>", "</script>", "<br/>", "<b>", "&amp;", "&lt;", "&gt;",
        "&amp;lt;", "&#0;", "&#xD800;", "&#9999999;", "&nbsp;", "&not", "<!--", "-->", "<![CDATA[",
        "<pre>", "</pre>", "\n", "\r", "\x00", "<", "&", "<img src=x onerror=alert(1)>", " ",
    ]
)  # fmt: skip
html_texts = st.one_of(
    st.text(), st.lists(st.one_of(html_pieces, st.text(max_size=8))).map("".join)
)


# Markup as feeds write it, with the odd forms the fast path must hand to the parser.
tag_pieces = st.sampled_from(
    [
        "<p>", "</p>", "<P CLASS=lead>", "</P >", "<br>", "<br/>", "<br />", "<b>", "</b>",
        "<a href=\"https://x.example/?a=1&amp;b=2\">", "<a title='x > y'>", "</a>",
        "<div\nclass=\"m\">", "</div>", "<li>", "<img src=x alt=\"\">", "<h2 id=h>", "</h2>",
        "<span data-x=\"1\" hidden>", "</span>", "<o:p>", "<my-tag>", "</p class=x>", "<pre>",
        "<script>", "<style>", "<!-- c -->", "<![CDATA[x]]>", "< p>", "a < b", "&amp;", "&lt;",
        "&#10;", "&#xA0;", "&nbsp;", "&not", "\n", "\r\n", "\t", " ",
    ]
)  # fmt: skip
markup = st.lists(st.one_of(tag_pieces, st.text(max_size=12))).map("".join)


@EXAMPLES
@given(markup)
def test_plain_markup_fast_path_reads_like_the_parser(text: str) -> None:
    fast = _plain_markup_text(text)
    if fast is not None:
        parser = _TextExtractor()
        parser.feed(text)
        parser.close()
        assert fast == "".join(parser.parts)


paragraph = st.lists(
    st.sampled_from(["rates", "rose", "3.5", "pct", "Veloria", "bank", "two", "!", "\u2014"]),
    max_size=12,
).map(" ".join)


@EXAMPLES
@given(st.lists(paragraph, max_size=8), st.integers(1, 6))
def test_body_shingles_from_paragraphs_are_the_shingles_of_all_words(
    lines: list[str], size: int
) -> None:
    text = "\n".join(lines)
    prepared = prepare_body(text, frozenset(), shingle_size=size, lead_words=60)
    words = [word for line in lines if line.strip() for word in tokens(line)]
    assert prepared.shingles == frozenset(shingles(words, size))


@EXAMPLES
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["rates", "3.5", "caf\u00e9", "\u0130", "\U0001f600"]),
            st.text(min_size=1, max_size=5),
        ),
        max_size=14,
    ),
    st.integers(1, 6),
)
def test_encoded_shingles_are_the_shingles_encoded(words: list[str], size: int) -> None:
    assert encoded_shingles(words, size) == [s.encode("utf-8") for s in shingles(words, size)]


@EXAMPLES
@given(urls)
def test_canonical_url_is_idempotent_and_never_raises(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@EXAMPLES
@given(html_texts)
def test_text_preparation_is_idempotent_and_never_raises(text: str) -> None:
    cleaned = html_to_text(text)
    assert html_to_text(cleaned) == cleaned
    assert normalize_space(cleaned) == cleaned
    line = single_line(text)
    assert single_line(line) == line
    assert "\n" not in line
    # Whatever came in, what is stored is text: no tag an HTML renderer would act on.
    assert "<script" not in cleaned.lower() and "<iframe" not in cleaned.lower()
    prepare_body(text, frozenset(), shingle_size=5, lead_words=60)


@EXAMPLES
@given(
    interval=st.floats(min_value=1, max_value=7 * 86400),
    errors=st.integers(min_value=0, max_value=10_000),
    jitter=st.floats(min_value=-1, max_value=1),
    cap_hours=st.floats(min_value=0.01, max_value=48),
)
def test_backoff_is_monotonic_in_errors_and_within_its_caps(
    interval: float, errors: int, jitter: float, cap_hours: float
) -> None:
    cap = timedelta(hours=cap_hours)

    def delay(count: int) -> float:
        moment = next_check_at(
            now=NOW, interval=interval, error_count=count, backoff_cap=cap, jitter=jitter
        )
        return (moment - NOW).total_seconds()

    base = interval * (1 + JITTER_SHARE * jitter)
    assert delay(errors) <= delay(errors + 1) + 1e-6
    assert base - 1e-6 <= delay(errors) <= max(cap.total_seconds(), base) + 1e-6
    assert delay(0) == delay(0)  # deterministic: jitter is fixed per feed, not random
    default = next_check_at(now=NOW, interval=interval, error_count=errors, jitter=jitter)
    assert (default - NOW).total_seconds() <= max(BACKOFF_CAP.total_seconds(), base) + 1e-6


words = st.sampled_from(
    "copper rose fell Reuters Acme Corp shares 3.5 per cent 12 million London Tokyo the a of "
    "on in said profit quarter bank rate cut ECB Fed".split()
)
paragraph = st.lists(words, min_size=1, max_size=40).map(" ".join)
bodies = st.lists(paragraph, min_size=0, max_size=6).map("\n".join)


@EXAMPLES
@given(bodies, bodies)
def test_similarity_is_symmetric_and_so_is_the_verdict(first: str, second: str) -> None:
    dedup = DedupSettings()
    a = prepare_body(first, frozenset(), shingle_size=5, lead_words=60)
    b = prepare_body(second, frozenset(), shingle_size=5, lead_words=60)
    ab, ba = compare(a, b, 5), compare(b, a, 5)
    assert (ab.jaccard, ab.containment, ab.shared) == (ba.jaccard, ba.containment, ba.shared)
    if len(a.shingles) != len(b.shingles):
        # The verdict measures the shorter text against the longer, whichever came first.
        shorter = min(len(a.shingles), len(b.shingles))
        assert is_copy(ab, shorter, dedup) == is_copy(ba, shorter, dedup)
    same = compare(a, a, 5)
    if a.shingles:
        assert same.jaccard == 1.0 and same.containment == 1.0


members = st.builds(
    Member,
    id=st.integers(min_value=1, max_value=6),
    feed_id=st.integers(min_value=1, max_value=3),
    publisher=st.sampled_from(["Reuters", "Acme Wire", "Desk"]),
    published=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 3), timezones=st.just(UTC)
    ),
    first_seen=st.just(NOW),
    title=st.just("t"),
    credits=st.frozensets(st.sampled_from(["Reuters", "Acme Wire", "Desk"]), max_size=2),
)
SAME = Comparison(
    jaccard=1.0,
    containment=1.0,
    shared=20,
    figures_missing=0,
    figures=0,
    name_mismatch=0.0,
    subject_missing=0,
    aligned=True,
)


@EXAMPLES
@given(members, st.lists(members, max_size=6, unique_by=lambda m: m.id))
def test_an_item_is_never_its_own_parent(new: Member, others: list[Member]) -> None:
    # Candidates may include the item itself (its own signature is in the index).
    matches = [Match(m, SAME) for m in [*others, new] if m.id != new.id or m is new]
    chosen, _ = choose_parent(new, matches)
    assert chosen is None or chosen.member.id != new.id


@EXAMPLES
@given(members, members)
def test_two_items_never_claim_each_other_as_parent(a: Member, b: Member) -> None:
    if a.id == b.id or (b.publisher in a.credits and a.publisher in b.credits):
        # Two items crediting each other contradict themselves; the linker only ever
        # asks for the newer item's parent, and the store test checks for cycles.
        return
    a_parent, _ = choose_parent(a, [Match(b, SAME)])
    b_parent, _ = choose_parent(b, [Match(a, SAME)])
    assert not (a_parent is not None and b_parent is not None)


# Prose with the punctuation, spaces, controls and word characters the text shortcuts meet.
prose_pieces = st.sampled_from(
    [
        "Bitcoin", "bitcoins", "ether", "Shiba  Inu", "near", "usd coin", "Tether's", "Veloria",
        "3.5%", "US$1,200", "_", "snake_case", "\u2014", "\u201cquoted\u201d", "caf\u00e9",
        "\u0130stanbul", "\u00b2", "(BTC)", "SOL/USDT", "-", ".", " ", "  ", "\n", "\r\n", "\t",
        "\x0b", "\x7f", "\x85", "\u00a0", "\u2003", "\u200b", "\u3000", "\ue000",
    ]
)  # fmt: skip
prose = st.lists(st.one_of(prose_pieces, st.text(max_size=6))).map(" ".join)


@EXAMPLES
@given(prose)
def test_word_set_is_the_set_of_word_runs(text: str) -> None:
    assert word_set(text) == set(_WORD_RUN.findall(text))


@EXAMPLES
@given(prose)
def test_ascii_tokens_are_the_unicode_tokens_of_folded_ascii_text(text: str) -> None:
    folded = text.casefold()
    if folded.isascii():
        assert _ASCII_TOKEN.findall(folded) == _TOKEN.findall(folded)


@EXAMPLES
@given(prose)
def test_a_coin_name_is_never_found_where_the_first_word_test_skips_it(text: str) -> None:
    # _crypto runs the name pattern only when a coin's first word is a word of the text.
    lower = text.lower()
    if _COIN_NAME.search(lower):
        assert not _COIN_FIRST_WORDS.isdisjoint(word_set(lower))


@EXAMPLES
@given(prose)
def test_normalize_space_skips_only_scans_that_would_change_nothing(text: str) -> None:
    expected = _SPACE_RUNS.sub(
        " ", _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    )
    lines = (line.strip() for line in expected.split("\n"))
    assert normalize_space(text) == "\n".join(line for line in lines if line)


# An index's life: items filed under one key a band, each band's key drawn from a few
# (so items collide in some bands), some items removed or filed anew, merges at any
# point (into the young arrays, and from them into the main ones at any share), the
# questions asked ahead at any point; then asked for real, several items at once.
_BANDS = sum(bands for bands, _, _ in band_layout(DedupSettings()))
band_values = st.lists(st.integers(0, 3), min_size=_BANDS, max_size=_BANDS).map(
    lambda values: frozenset((band << 56) | value for band, value in enumerate(values))
)
index_steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "remove", "merge", "ahead"]),
        st.integers(1, 12),
        band_values,
    ),
    max_size=40,
)


@EXAMPLES
@given(index_steps, st.lists(band_values, max_size=5), st.sampled_from([0, 1, 16]))
def test_index_hits_count_shared_keys_of_live_items_however_asked(
    steps: list[tuple[str, int, frozenset[int]]], questions: list[frozenset[int]], share: int
) -> None:
    index = CandidateIndex(DedupSettings())
    index._YOUNG_SHARE = share
    asked = [np.array(sorted(q), dtype=np.uint64).tobytes() for q in questions]
    filed: dict[int, frozenset[int]] = {}
    for action, item_id, keys in steps:
        if action == "add":
            index.add_keys(item_id, np.array(sorted(keys), dtype=np.uint64).tobytes(), NOW)
            filed[item_id] = keys
        elif action == "remove":
            index.remove(item_id)
            filed.pop(item_id, None)
        elif action == "ahead":
            index.merged_hits(asked, 64, ahead=True)
        elif index._recent:
            index._merge_recent()
    expected = [
        Counter({i: len(keys & q) for i, keys in filed.items() if keys & q}) for q in questions
    ]
    together = index.merged_hits(asked, 64)
    assert [m + index.recent_hits(k, 64) for m, k in zip(together, asked, strict=True)] == expected
    assert [index.band_hits(keys) for keys in asked] == expected
