"""aggregator.parse: feed bytes -> ParsedFeed, with documents written out inline."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.errors import ParseError
from aggregator.models import ParsedEntry, ParsedFeed
from aggregator.parse import parse_feed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example/feeds/markets.xml"


def parse(body: bytes, *, now: datetime = NOW, **kwargs: object) -> ParsedFeed:
    url = kwargs.pop("url", FEED_URL)
    return parse_feed(body, url=str(url), now=now, **kwargs)  # type: ignore[arg-type]


def only(feed: ParsedFeed) -> ParsedEntry:
    assert len(feed.entries) == 1, feed.entries
    return feed.entries[0]


def rss_item(
    *,
    title: str = "Copper edges higher",
    link: str | None = "https://news.example/markets/copper",
    guid: str | None = None,
    date: str | None = None,
    description: str | None = None,
    extra: str = "",
) -> str:
    parts = [f"<item><title>{title}</title>"]
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    if description is not None:
        parts.append(f"<description><![CDATA[{description}]]></description>")
    parts.append(extra)
    parts.append("</item>")
    return "".join(parts)


def rss(*items: str, channel_extra: str = "", encoding: str = "utf-8") -> bytes:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>Markets Desk</title><link>https://news.example/</link>"
        f"<description>Market news</description>{channel_extra}{''.join(items)}"
        "</channel></rss>"
    ).encode(encoding)


# --- the four document formats ---------------------------------------------------------------

RSS20 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"
     xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Markets &amp; Money</title>
  <link>https://news.example/</link>
  <description>Market news</description>
  <ttl>30</ttl>
  <item>
    <title>Oil &amp; gas rally</title>
    <link>https://news.example/energy/oil-rally?utm_source=rss&amp;id=7</link>
    <guid isPermaLink="false">oil-rally-7</guid>
    <pubDate>Tue, 24 Nov 2026 09:30:00 +0200</pubDate>
    <dc:creator>Jane Doe</dc:creator>
    <category>Energy</category>
    <category>Markets</category>
    <category>Energy</category>
    <description>Short &lt;b&gt;summary&lt;/b&gt; of the rally.</description>
    <content:encoded><![CDATA[<p>Brent rose 3%.</p><script>alert('x')</script>
      <p>WTI <a href="/energy/wti">followed</a>.</p>]]></content:encoded>
  </item>
  <item>
    <title>Second story</title>
    <link>https://news.example/markets/second</link>
    <guid isPermaLink="false">second-8</guid>
    <pubDate>Tue, 24 Nov 2026 08:00:00 GMT</pubDate>
    <description>Second summary.</description>
  </item>
</channel>
</rss>"""


def test_rss20_feed_fields() -> None:
    feed = parse(RSS20)
    assert feed.title == "Markets & Money"
    assert feed.link == "https://news.example/"
    assert feed.version == "rss20"
    assert feed.warning is None
    assert feed.ttl == 30 * 60
    assert [e.key for e in feed.entries] == ["oil-rally-7", "second-8"]


def test_rss20_entry_fields() -> None:
    entry = parse(RSS20).entries[0]
    assert entry.guid == "oil-rally-7"
    assert entry.key == "oil-rally-7"
    assert entry.url == "https://news.example/energy/oil-rally?utm_source=rss&id=7"
    assert entry.canonical_url == "https://news.example/energy/oil-rally?id=7"
    assert entry.title == "Oil & gas rally"
    assert entry.author == "Jane Doe"
    assert entry.categories == ("Energy", "Markets")
    assert entry.published == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert entry.published_from_feed is True
    assert entry.updated is None
    assert entry.summary_text == "Short summary of the rally."
    assert entry.content_text == "Brent rose 3%.\nWTI followed."
    assert "<p>Brent rose 3%.</p>" in entry.content_html
    assert len(entry.content_hash) == 64


def test_rss20_script_reaches_neither_content_html_nor_content_text() -> None:
    entry = parse(RSS20).entries[0]
    assert "script" not in entry.content_html.lower()
    assert "alert" not in entry.content_html
    assert "alert" not in entry.content_text


RDF = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://rdf.example/">
    <title>Bund Desk</title>
    <link>https://rdf.example/</link>
    <description>Bonds</description>
    <items><rdf:Seq>
      <rdf:li rdf:resource="https://rdf.example/bunds"/>
      <rdf:li rdf:resource="https://rdf.example/gilts"/>
    </rdf:Seq></items>
  </channel>
  <item rdf:about="https://rdf.example/bunds">
    <title>Bund yields fall</title>
    <link>https://rdf.example/bunds</link>
    <description>Yields fell &lt;i&gt;sharply&lt;/i&gt;.</description>
    <dc:date>2026-11-24T08:00:00+01:00</dc:date>
    <dc:creator>Max Mustermann</dc:creator>
    <dc:subject>Bonds</dc:subject>
  </item>
  <item rdf:about="https://rdf.example/gilts">
    <title>Gilts steady</title>
    <link>https://rdf.example/gilts</link>
  </item>
</rdf:RDF>"""


def test_rss10_rdf() -> None:
    feed = parse(RDF)
    assert feed.version == "rss10"
    assert feed.title == "Bund Desk"
    assert feed.warning is None
    first, second = feed.entries
    assert first.title == "Bund yields fall"
    assert first.canonical_url == "https://rdf.example/bunds"
    assert first.key == "https://rdf.example/bunds"
    assert first.author == "Max Mustermann"
    assert first.categories == ("Bonds",)
    assert first.summary_text == "Yields fell sharply."
    assert first.published == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert first.published_from_feed is True
    assert second.published == NOW
    assert second.published_from_feed is False


RSS091 = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91">
<channel>
  <title>Old Desk</title>
  <link>https://old.example/</link>
  <description>Since 1999</description>
  <language>en-us</language>
  <item>
    <title>Gold steady</title>
    <link>https://old.example/gold?utm_medium=rss</link>
    <description>Gold was steady at $2,000.</description>
  </item>
</channel>
</rss>"""


def test_rss091() -> None:
    feed = parse(RSS091)
    assert feed.version is not None and feed.version.startswith("rss091")
    entry = only(feed)
    assert entry.guid is None
    assert entry.key == "https://old.example/gold"
    assert entry.summary_text == "Gold was steady at $2,000."
    assert entry.published == NOW
    assert entry.published_from_feed is False


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="text">Central Bank Watch</title>
  <link rel="alternate" href="https://atom.example/"/>
  <link rel="self" href="https://atom.example/feed.atom"/>
  <id>urn:uuid:60a76c80-d399-11d9-b91C-0003939e0af6</id>
  <updated>2026-11-24T15:00:00Z</updated>
  <entry>
    <title>Fed holds rates</title>
    <link rel="alternate" href="https://atom.example/fed-holds#top"/>
    <id>tag:atom.example,2026:fed-holds</id>
    <updated>2026-11-24T10:00:00-05:00</updated>
    <author><name>Sam Roe</name></author>
    <category term="central-banks"/>
    <category term="rates" label="Interest rates"/>
    <summary>Rates unchanged.</summary>
    <content type="html">&lt;p&gt;The Fed &lt;em&gt;held&lt;/em&gt; rates.&lt;/p&gt;
      &lt;script&gt;steal()&lt;/script&gt;&lt;p&gt;Markets rose.&lt;/p&gt;</content>
  </entry>
</feed>"""


def test_atom10() -> None:
    feed = parse(ATOM)
    assert feed.version == "atom10"
    assert feed.title == "Central Bank Watch"
    assert feed.link == "https://atom.example/"
    entry = only(feed)
    assert entry.key == "tag:atom.example,2026:fed-holds"
    assert entry.guid == "tag:atom.example,2026:fed-holds"
    assert entry.canonical_url == "https://atom.example/fed-holds"
    assert entry.author == "Sam Roe"
    assert entry.categories == ("central-banks", "rates")
    assert entry.summary_text == "Rates unchanged."
    assert entry.content_text == "The Fed held rates.\nMarkets rose."
    assert "steal" not in entry.content_html and "steal" not in entry.content_text


def test_atom10_updated_only_is_used_as_published_in_utc() -> None:
    entry = only(parse(ATOM))
    expected = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert entry.updated == expected
    assert entry.published == expected
    assert entry.published_from_feed is True


def test_atom10_published_and_updated_are_kept_apart() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:x</id>
<updated>2026-11-24T12:00:00Z</updated>
<entry><title>Revised</title><id>urn:x:1</id><link href="https://atom.example/1"/>
<published>2026-11-23T09:00:00+09:00</published><updated>2026-11-24T12:00:00+01:00</updated>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
<p>Hello <b>x</b></p></div></content>
</entry></feed>"""
    entry = only(parse(body))
    assert entry.published == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert entry.updated == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert entry.content_text == "Hello x"
    assert entry.summary_text == ""


def test_empty_but_valid_feed_has_no_entries_and_no_error() -> None:
    feed = parse(rss())
    assert feed.version == "rss20"
    assert feed.entries == ()
    assert feed.warning is None


# --- keys -----------------------------------------------------------------------------------


def test_key_is_guid_when_present() -> None:
    entry = only(parse(rss(rss_item(guid="wire-123", link="https://news.example/x"))))
    assert entry.key == "wire-123"


def test_key_falls_back_to_canonical_link() -> None:
    body = rss(rss_item(link="https://News.Example:443/markets/x?utm_source=rss&id=1#frag"))
    entry = only(parse(body))
    assert entry.guid is None
    assert entry.key == "https://news.example/markets/x?id=1"


def test_key_from_link_is_stable_when_tracking_parameters_rotate() -> None:
    first = only(parse(rss(rss_item(link="https://news.example/a?id=1&utm_campaign=mon"))))
    second = only(parse(rss(rss_item(link="https://news.example/a?id=1&utm_campaign=tue"))))
    assert first.key == second.key == "https://news.example/a?id=1"


@pytest.mark.parametrize("date", [None, "Tue, 24 Nov 2026 09:30:00 GMT", "not a date at all"])
def test_key_without_guid_or_link_is_a_hash_of_title_and_date_string(date: str | None) -> None:
    body = rss(rss_item(title="Untitled wire", link=None, date=date))
    first = only(parse(body, now=NOW))
    second = only(parse(body, now=NOW + timedelta(days=3, hours=5)))
    expected = hashlib.sha256(f"Untitled wire\x1f{date or ''}".encode()).hexdigest()
    assert first.key == second.key == f"sha256:{expected}"


def test_hashed_keys_differ_for_different_titles() -> None:
    body = rss(rss_item(title="One", link=None), rss_item(title="Two", link=None))
    one, two = parse(body).entries
    assert one.key != two.key


def test_very_long_guid_is_hashed() -> None:
    guid = "g" * 600
    entry = only(parse(rss(rss_item(guid=guid))))
    assert entry.key == "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    assert entry.guid == guid


def test_duplicate_guids_keep_the_first_entry_only() -> None:
    body = rss(
        rss_item(title="First copy", guid="dup", description="first"),
        rss_item(title="Other", guid="other"),
        rss_item(title="Second copy", guid="dup", description="second"),
    )
    feed = parse(body)
    assert [(e.key, e.title) for e in feed.entries] == [("dup", "First copy"), ("other", "Other")]


def test_duplicate_links_without_guid_keep_the_first_entry_only() -> None:
    body = rss(
        rss_item(title="A", link="https://news.example/s?utm_source=a"),
        rss_item(title="B", link="https://news.example/s?utm_source=b"),
    )
    assert [e.title for e in parse(body).entries] == ["A"]


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 24 Nov 2026 09:30:00 GMT", datetime(2026, 11, 24, 9, 30, tzinfo=UTC)),
        ("Tue, 24 Nov 2026 09:30:00 +0200", datetime(2026, 11, 24, 7, 30, tzinfo=UTC)),
        ("Tue, 24 Nov 2026 09:30:00 -0530", datetime(2026, 11, 24, 15, 0, tzinfo=UTC)),
        ("Tue, 24 Nov 2026 09:30:00 EST", datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
        ("Wed, 25 Nov 2026 01:30:00 +1400", datetime(2026, 11, 24, 11, 30, tzinfo=UTC)),
        ("2026-11-24T09:30:00+02:00", datetime(2026, 11, 24, 7, 30, tzinfo=UTC)),
        ("2026-11-24T09:30:00Z", datetime(2026, 11, 24, 9, 30, tzinfo=UTC)),
    ],
)
def test_published_is_converted_to_utc(date: str, expected: datetime) -> None:
    entry = only(parse(rss(rss_item(date=date))))
    assert entry.published == expected
    assert entry.published.utcoffset() == timedelta(0)
    assert entry.published_from_feed is True


@pytest.mark.parametrize("date", [None, "", "not a date", "32/13/2026"])
def test_missing_or_unreadable_date_is_now(date: str | None) -> None:
    entry = only(parse(rss(rss_item(date=date))))
    assert entry.published == NOW
    assert entry.published_from_feed is False
    assert entry.updated is None


@pytest.mark.parametrize(
    "future",
    [
        "Sat, 28 Nov 2026 12:00:00 GMT",  # three days ahead
        "Fri, 31 Dec 2100 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Wed, 25 Nov 2026 12:30:00 GMT",  # half an hour ahead
    ],
)
def test_future_date_is_clamped_to_now(future: str) -> None:
    entry = only(parse(rss(rss_item(date=future))))
    assert entry.published == NOW
    assert entry.published_from_feed is True


def test_date_within_the_clock_tolerance_is_kept() -> None:
    entry = only(parse(rss(rss_item(date="Wed, 25 Nov 2026 12:05:00 GMT"))))
    assert entry.published == NOW + timedelta(minutes=5)


def test_future_updated_is_clamped_to_now() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><title>x</title><id>urn:1</id><published>2026-11-20T00:00:00Z</published>
<updated>2027-01-01T00:00:00Z</updated></entry></feed>"""
    entry = only(parse(body))
    assert entry.published == datetime(2026, 11, 20, tzinfo=UTC)
    assert entry.updated == NOW


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 01 Jan 1996 00:00:00 GMT", datetime(1996, 1, 1, tzinfo=UTC)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", datetime(1970, 1, 1, tzinfo=UTC)),
        ("Sun, 01 Jan 1899 00:00:00 GMT", datetime(1899, 1, 1, tzinfo=UTC)),
    ],
)
def test_far_past_date_is_kept(date: str, expected: datetime) -> None:
    entry = only(parse(rss(rss_item(date=date))))
    assert entry.published == expected
    assert entry.published_from_feed is True


# --- broken documents -----------------------------------------------------------------------

BOZO_AMPERSAND = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>AT&T beats estimates</title><link>https://wire.example/att</link>
<guid isPermaLink="false">att-1</guid></item>
<item><title>Second</title><link>https://wire.example/2</link>
<guid isPermaLink="false">two-2</guid></item>
</channel></rss>"""

BOZO_TRUNCATED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>First</title><link>https://wire.example/1</link><guid isPermaLink="false">1</guid>
</item>
<item><title>Second</title><link>https://wire.example/2</link><guid isPermaLink="false">2</guid>
</item>
<item><title>Third</title><link>https://wire.exa"""


@pytest.mark.parametrize(
    ("body", "keys"),
    [(BOZO_AMPERSAND, ["att-1", "two-2"]), (BOZO_TRUNCATED, ["1", "2"])],
    ids=["unescaped-ampersand", "truncated"],
)
def test_bozo_feed_with_entries_is_used_with_a_warning(body: bytes, keys: list[str]) -> None:
    feed = parse(body)
    assert feed.warning
    assert "\n" not in feed.warning
    assert [e.key for e in feed.entries][: len(keys)] == keys
    assert feed.entries[0].title.startswith(("AT&T", "First"))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b"   \n\t ", None),
        (
            b"<!DOCTYPE html><html><head><title>Markets</title></head>"
            b"<body><h1>Markets</h1><p>Not a feed.</p></body></html>",
            "text/html; charset=utf-8",
        ),
        (
            b"<!DOCTYPE html><html><head><title>Markets</title>"
            b'<link rel="alternate" type="application/rss+xml" href="/feed"></head>'
            b"<body><p>Subscribe</p></body></html>",
            None,
        ),
        (b"<html><body><a href='/rss'>RSS</a></body></html>", "application/xml"),
        (b'{"items": [{"title": "json"}]}', "application/json"),
        (b"garbage \x00\x01\x02", None),
        (b"<?xml version='1.0'?><note><to>x</to></note>", None),
    ],
    ids=[
        "empty",
        "whitespace",
        "html",
        "html-with-feed-link",
        "html-as-xml",
        "json",
        "binary",
        "xml",
    ],
)
def test_documents_that_are_not_feeds_raise_parse_error(
    body: bytes, content_type: str | None
) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse(body, content_type=content_type)


def test_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse(b"")


# --- content --------------------------------------------------------------------------------


def _hash_of(description: str, *, title: str = "Copper edges higher") -> str:
    return only(parse(rss(rss_item(title=title, guid="g", description=description)))).content_hash


def test_content_hash_is_stable_across_parses_and_clocks() -> None:
    body = rss(rss_item(guid="g", description="<p>Copper rose 2%.</p>"))
    first = only(parse(body, now=NOW))
    second = only(parse(body, now=NOW + timedelta(hours=7)))
    assert first.content_hash == second.content_hash


@pytest.mark.parametrize(
    "variant",
    [
        "<div>Copper rose 2% on the LME.</div>",
        "<p><b>Copper</b> rose <em>2%</em> on the <a href='https://lme.example'>LME</a>.</p>",
        "<p>  Copper   rose  2% on   the LME. </p>",
        "\n<p>Copper rose 2% on the LME.</p>\n\n",
        "Copper rose 2% on the&nbsp;LME.",
        "<span>Copper</span> <span>rose</span> 2% on the LME.<!-- ad slot -->",
    ],
)
def test_content_hash_ignores_markup_and_whitespace(variant: str) -> None:
    assert _hash_of(variant) == _hash_of("<p>Copper rose 2% on the LME.</p>")


# Source newlines inside HTML text are ordinary whitespace: a publisher re-wrapping its
# markup must not change content_text or content_hash (no spurious revision).
def test_content_hash_ignores_rewrapped_lines_inside_a_paragraph() -> None:
    assert _hash_of("<p>Copper rose\n2% on\nthe LME.</p>") == _hash_of(
        "<p>Copper rose 2% on the LME.</p>"
    )


@pytest.mark.parametrize(
    "changed",
    [
        "<p>Copper rose 3% on the LME.</p>",
        "<p>Copper fell 2% on the LME.</p>",
        "<p>Copper rose 2% on the LME. Updated.</p>",
    ],
)
def test_content_hash_changes_with_the_body_text(changed: str) -> None:
    assert _hash_of(changed) != _hash_of("<p>Copper rose 2% on the LME.</p>")


def test_content_hash_changes_with_the_title() -> None:
    body = "<p>Copper rose.</p>"
    assert _hash_of(body, title="Copper up") != _hash_of(body, title="Copper down")


def test_text_fields_have_no_tags() -> None:
    description = (
        '<div class="lead"><p>Lead <strong>para</strong>.</p><img src="x.png"/>'
        "<table><tr><td>EUR/USD</td><td>1.08</td></tr></table></div>"
    )
    content = "<h2>Head</h2><p>Body <a href='/x'>link</a>.</p><ul><li>one</li></ul>"
    extra = f"<content:encoded><![CDATA[{content}]]></content:encoded>"
    entry = only(parse(rss(rss_item(title="T <b>bold</b>", description=description, extra=extra))))
    for text in (entry.title, entry.summary_text, entry.content_text):
        assert "<" not in text and ">" not in text
    assert entry.summary_text == "Lead para.\nEUR/USD\n1.08"
    assert entry.content_text == "Head\nBody link.\none"


@pytest.mark.parametrize(
    "payload",
    [
        "<p>Safe</p><script>alert('owned')</script>",
        "<p>Safe</p><script type='text/javascript'>\n  alert('owned');\n</script>",
        "<p>Safe</p><SCRIPT SRC='https://evil.example/x.js'></SCRIPT>",
        "<p>Safe</p><iframe src=\"javascript:alert('owned')\"></iframe>",
        "<p>Safe</p><img src=x onerror=\"alert('owned')\">",
        "<p onclick=\"alert('owned')\">Safe</p>",
        "<p>Safe</p><a href=\"javascript:alert('owned')\">x</a>",
    ],
)
def test_script_does_not_reach_content(payload: str) -> None:
    extra = f"<content:encoded><![CDATA[{payload}]]></content:encoded>"
    entry = only(parse(rss(rss_item(description="Summary.", extra=extra))))
    assert "alert" not in entry.content_text
    assert "alert" not in entry.content_html
    assert "script" not in entry.content_html.lower()
    assert entry.content_text.startswith("Safe")


def test_script_does_not_reach_summary() -> None:
    entry = only(parse(rss(rss_item(description="<p>Fine</p><script>alert(1)</script>"))))
    assert entry.summary_text == "Fine"
    assert "alert" not in entry.summary_html


def test_summary_equal_to_content_is_kept_once() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><title>x</title><id>urn:1</id><updated>2026-11-20T00:00:00Z</updated>
<content type="html">&lt;p&gt;Only body.&lt;/p&gt;</content></entry></feed>"""
    entry = only(parse(body))
    assert entry.content_text == "Only body."
    assert entry.summary_text == ""
    assert entry.summary_html == ""


def test_relative_links_resolve_against_the_feed_url() -> None:
    extra = '<content:encoded><![CDATA[<p><a href="../chart">chart</a></p>]]></content:encoded>'
    body = rss(rss_item(link="/markets/story?utm_source=rss&id=5", extra=extra))
    entry = only(parse(body, url="https://news.example/feeds/markets.xml"))
    assert entry.url == "https://news.example/markets/story?utm_source=rss&id=5"
    assert entry.canonical_url == "https://news.example/markets/story?id=5"
    assert entry.key == "https://news.example/markets/story?id=5"
    assert 'href="https://news.example/chart"' in entry.content_html


def test_relative_links_resolve_against_atom_xml_base() -> None:
    body = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://atom.example/blog/">
<title>T</title><entry><title>x</title><id>urn:1</id><link href="posts/1"/>
<updated>2026-11-20T00:00:00Z</updated></entry></feed>"""
    entry = only(parse(body, url="https://cdn.example/feed.atom"))
    assert entry.url == "https://atom.example/blog/posts/1"


def test_links_in_markup_resolve_against_the_element_base_and_stay_safe() -> None:
    html = (
        '<p><a href="notes/1">a</a> <a href="HTTP://Other.example/x">b</a> '
        '<a href="https://abs.example/y?a=1&amp;b=2">c</a> <a href="javascript:alert(1)">d</a> '
        '<img src=\'/img.png\' alt="i"> <span data-src="z">e</span></p>'
    )
    content = html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://atom.example/blog/">
<title>T</title><entry><title>x</title><id>urn:1</id><updated>2026-11-20T00:00:00Z</updated>
<content type="html" xml:base="https://atom.example/desk/">{content}</content>
</entry></feed>""".encode()
    entry = only(parse(body, url="https://cdn.example/feed.atom"))
    assert entry.content_html == (
        '<p><a href="https://atom.example/desk/notes/1">a</a> '
        '<a href="HTTP://Other.example/x">b</a> <a href="https://abs.example/y?a=1&amp;b=2">c</a> '
        '<a href="">d</a> <img alt="i" src="https://atom.example/img.png" /> <span>e</span></p>'
    )


def test_markup_with_only_absolute_links_is_left_as_the_sanitiser_wrote_it() -> None:
    svg = (
        '<svg baseProfile="full" width="30px" xmlns="http://www.w3.org/2000/svg">'
        '<circle r="5" /></svg><p><a href="https://abs.example/">x</a></p>'
    )
    extra = f"<content:encoded><![CDATA[{svg}]]></content:encoded>"
    entry = only(parse(rss(rss_item(extra=extra)), url="https://news.example/feed.xml"))
    assert 'baseProfile="full"' in entry.content_html
    assert '<a href="https://abs.example/">x</a>' in entry.content_html


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        ("<ttl>30</ttl>", 1800.0),
        ("<ttl> 60 </ttl>", 3600.0),
        ("<ttl>1.5</ttl>", 90.0),
        ("<ttl>0</ttl>", None),
        ("<ttl>-5</ttl>", None),
        ("<ttl>soon</ttl>", None),
        ("<ttl></ttl>", None),
        ("", None),
    ],
)
def test_ttl_in_seconds(ttl: str, seconds: float | None) -> None:
    assert parse(rss(rss_item(), channel_extra=ttl)).ttl == seconds


# float() accepts "inf"/"1e309": a publisher's <ttl> must not become an infinite interval.
@pytest.mark.parametrize("ttl", ["inf", "Infinity", "1e309"])
def test_non_finite_ttl_is_ignored(ttl: str) -> None:
    assert parse(rss(rss_item(), channel_extra=f"<ttl>{ttl}</ttl>")).ttl is None


# --- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("windows-1251", "Рубль укрепился к доллару"),
        ("iso-8859-1", "Börse Zürich: Café-Aktien steigen"),
        ("iso-8859-15", "Le prix atteint 5 € à Paris"),
        ("utf-8", "日経平均株価が上昇"),
    ],
)
@pytest.mark.parametrize(
    "content_type", [None, "application/rss+xml", "application/rss+xml; charset={encoding}"]
)
def test_declared_encoding_decodes_correctly(
    encoding: str, text: str, content_type: str | None
) -> None:
    body = rss(rss_item(title=text, guid="g", description=f"<p>{text}</p>"), encoding=encoding)
    assert text.encode("utf-8") not in body or encoding == "utf-8"
    header = content_type.format(encoding=encoding) if content_type else None
    entry = only(parse(body, content_type=header))
    assert entry.title == text
    assert entry.summary_text == text


def test_utf8_with_bom_decodes_correctly() -> None:
    body = "\ufeff".encode() + rss(rss_item(title="Ölpreis steigt", guid="g"))
    assert only(parse(body)).title == "Ölpreis steigt"


def test_parse_result_is_frozen() -> None:
    feed = parse(RSS20)
    with pytest.raises(AttributeError):
        feed.entries[0].title = "changed"  # type: ignore[misc]


def test_character_references_to_surrogates_do_not_lose_the_feed() -> None:
    # Not well-formed (a bare "&") so feedparser's loose parser runs, which used to crash
    # on a reference to a surrogate code point.
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>S&P &#xD800;</title>'
        b'<item><title>a &#55296; b &#57343;</title><guid isPermaLink="false">g1</guid>'
        b"<description>Copper rose.</description></item></channel></rss>"
    )
    entry = only(parse(body))
    assert entry.key == "g1"
    assert entry.title == "a \ufffd b \ufffd"


def test_an_atom_entry_without_a_web_link_has_no_url() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><id>tag:desk.example,2026:1</id><title>T</title>
<updated>2026-11-01T00:00:00Z</updated></entry></feed>"""
    entry = only(parse(body))
    assert entry.url is None and entry.canonical_url is None
    assert entry.key == "tag:desk.example,2026:1"
