"""aggregator.opml: read readers' OPML exports, write our own, append feeds to config.toml."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from aggregator.config import load_settings, settings_from_mapping
from aggregator.errors import ConfigError
from aggregator.opml import (
    IMPORT_COMMENT,
    OpmlFeed,
    append_feeds_to_config,
    parse_opml,
    read_opml,
    render_opml,
    slugify,
)

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)

# Feedly/Inoreader-style export: folders nested two deep, a feed outside any folder.
NESTED = b"""\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head>
    <title>Subscriptions in my reader</title>
    <dateCreated>Sat, 01 Mar 2025 10:00:00 GMT</dateCreated>
  </head>
  <body>
    <outline text="Markets" title="Markets">
      <outline text="FX" title="FX">
        <outline type="rss" text="FXStreet" title="FXStreet News"
                 xmlUrl="https://www.fxstreet.com/rss/news" htmlUrl="https://www.fxstreet.com/"/>
        <outline type="rss" text="ForexLive" xmlUrl="https://www.forexlive.com/feed/news"/>
      </outline>
      <outline type="rss" text="MarketWatch"
               xmlUrl="https://feeds.content.dowjones.io/public/rss/mw_topstories"
               category="/Equities/US Stocks,earnings"/>
    </outline>
    <outline text="Crypto &amp; Web3">
      <outline type="rss" text="CoinDesk" xmlUrl="https://www.coindesk.com/arc/outboundfeeds/rss/"/>
    </outline>
    <outline type="rss" text="Federal Reserve" xmlUrl="https://www.federalreserve.gov/feeds/press_all.xml"/>
  </body>
</opml>
"""

# OPML 1.0 as an old desktop reader wrote it: Windows-1252, lower-case attribute names,
# title but no text on feeds, version="RSS".
OLD_READER = """\
<?xml version="1.0" encoding="windows-1252"?>
<opml version="1.0">
<head>
<title>AmphetaDesk Subscriptions</title>
<dateCreated>Mon, 14 Feb 2005 09:12:44 GMT</dateCreated>
<ownerName>Jörg</ownerName>
</head>
<body>
<outline title="Börsen-Zeitung \u2013 Märkte" type="rss" version="RSS"
  xmlurl="http://www.boersen-zeitung.de/rss/maerkte.xml" htmlurl="http://www.boersen-zeitung.de/"/>
<outline title="Reuters: Business News" type="rss" version="RSS"
  xmlurl="http://feeds.reuters.com/reuters/businessNews"/>
</body>
</opml>
""".encode("cp1252")

# Odd characters: quotes, ampersands (one double-escaped by its exporter), angle
# brackets, an apostrophe, a query string, non-Latin text, a title longer than 64.
ODD = """\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Odd &lt;&amp;&gt; "quoted"</title></head>
  <body>
    <outline text="Barron's &quot;Up &amp; Down&quot; &lt;Wall St&gt;"
             xmlUrl="https://example.com/rss?a=1&amp;b=%22x%22"/>
    <outline text="AT&amp;amp;T Investor News" xmlUrl="https://att.example/ir.rss"/>
    <outline text="日本経済新聞" xmlUrl="https://www.nikkei.example/rss/markets.xml"/>
    <outline text="{long}" xmlUrl="https://long.example/feed"/>
    <outline text="  Tab\tand\nnewline  " xmlUrl="https://ws.example/feed"/>
  </body>
</opml>
""".replace("{long}", "The Extraordinarily Long Name Of A Financial Newsletter " * 3).encode()

# Schemes that are not fetchable feeds, next to one that is.
SCHEMES = b"""\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Mixed</title></head>
  <body>
    <outline text="Podcast app link" xmlUrl="feed://podcasts.example/rss"/>
    <outline text="Old FTP mirror" xmlUrl="ftp://ftp.example/news.xml"/>
    <outline text="Sneaky" xmlUrl="javascript:alert(1)"/>
    <outline text="Relative" xmlUrl="/rss/news.xml"/>
    <outline text="Empty" xmlUrl=""/>
    <outline text="Bad port" xmlUrl="https://bad.example:99999/rss"/>
    <outline text="Good" xmlUrl="https://good.example/rss"/>
  </body>
</opml>
"""

BILLION_LAUGHS = b"""\
<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<opml version="2.0"><head/><body>
  <outline text="&lol3;" xmlUrl="https://example.com/rss"/>
</body></opml>
"""


def feed_by_url(feeds: list[OpmlFeed], url: str) -> OpmlFeed:
    return next(f for f in feeds if f.url == url)


# --- reading ----------------------------------------------------------------------------


def test_nested_folders_become_tags() -> None:
    feeds = parse_opml(NESTED, source="reader.opml")
    assert [f.name for f in feeds] == [
        "fxstreet",
        "forexlive",
        "marketwatch",
        "coindesk",
        "federal-reserve",
    ]
    assert feeds[0].tags == ("markets", "fx")
    assert feeds[1].tags == ("markets", "fx")
    assert feeds[3].tags == ("crypto-web3",)
    assert feeds[4].tags == ()


def test_category_attribute_adds_slash_and_comma_separated_tags() -> None:
    feeds = parse_opml(NESTED, source="reader.opml")
    marketwatch = feed_by_url(feeds, "https://feeds.content.dowjones.io/public/rss/mw_topstories")
    assert marketwatch.tags == ("markets", "equities", "us-stocks", "earnings")


def test_text_is_the_publisher_and_html_url_the_site() -> None:
    fxstreet = parse_opml(NESTED, source="reader.opml")[0]
    assert fxstreet == OpmlFeed(
        name="fxstreet",
        publisher="FXStreet",
        url="https://www.fxstreet.com/rss/news",
        tags=("markets", "fx"),
        site_url="https://www.fxstreet.com/",
    )
    assert parse_opml(NESTED, source="reader.opml")[1].site_url is None


def test_read_opml_reports_title_and_nothing_skipped() -> None:
    document = read_opml(NESTED, source="reader.opml")
    assert document.title == "Subscriptions in my reader"
    assert document.skipped == ()
    assert len(document.feeds) == 5


def test_opml_1_0_from_an_old_reader() -> None:
    feeds = parse_opml(OLD_READER, source="amphetadesk.opml")
    assert [(f.name, f.publisher, f.url, f.site_url) for f in feeds] == [
        (
            "borsen-zeitung-markte",
            "Börsen-Zeitung \u2013 Märkte",
            "http://www.boersen-zeitung.de/rss/maerkte.xml",
            "http://www.boersen-zeitung.de/",
        ),
        (
            "reuters-business-news",
            "Reuters: Business News",
            "http://feeds.reuters.com/reuters/businessNews",
            None,
        ),
    ]


def test_odd_characters_and_quotes() -> None:
    document = read_opml(ODD, source="odd.opml")
    assert document.title == 'Odd <&> "quoted"'
    barrons, att, nikkei, long, spaced = document.feeds
    assert barrons.publisher == 'Barron\'s "Up & Down" <Wall St>'
    assert barrons.url == "https://example.com/rss?a=1&b=%22x%22"
    assert barrons.name == "barrons-up-down-wall-st"
    assert att.publisher == "AT&T Investor News"  # double-escaped by the exporter
    assert nikkei.publisher == "日本経済新聞"
    assert nikkei.name == "nikkei-example"  # nothing Latin in the title: from the host
    assert len(long.name) == 64 and not long.name.endswith("-")
    assert spaced.publisher == "Tab and newline"


def test_names_are_valid_config_slugs() -> None:
    for data in (NESTED, OLD_READER, ODD):
        for feed in parse_opml(data, source="x.opml"):
            assert NAME.fullmatch(feed.name), feed.name


def test_same_titles_get_numbered_names() -> None:
    data = b"""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Press releases" xmlUrl="https://a.example/rss"/>
      <outline text="Press Releases" xmlUrl="https://b.example/rss"/>
      <outline text="PRESS RELEASES!" xmlUrl="https://c.example/rss"/>
    </body></opml>"""
    names = [f.name for f in parse_opml(data, source="x.opml")]
    assert names == ["press-releases", "press-releases-2", "press-releases-3"]


def test_title_used_when_text_missing_and_host_when_both_missing() -> None:
    data = b"""<?xml version="1.0"?><opml version="1.0"><head/><body>
      <outline title="Only a title" xmlUrl="https://t.example/rss"/>
      <outline xmlUrl="https://www.nothing.example/rss"/>
    </body></opml>"""
    feeds = parse_opml(data, source="x.opml")
    assert [(f.name, f.publisher) for f in feeds] == [
        ("only-a-title", "Only a title"),
        ("nothing-example", "nothing.example"),
    ]


def test_duplicate_urls_kept_once_with_tags_of_every_listing() -> None:
    data = b"""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Crypto"><outline text="Decrypt" xmlUrl="https://decrypt.co/feed"/></outline>
      <outline text="Tech"><outline text="Decrypt again" xmlUrl="HTTPS://Decrypt.CO/feed"/></outline>
    </body></opml>"""
    document = read_opml(data, source="x.opml")
    assert len(document.feeds) == 1
    assert document.feeds[0].publisher == "Decrypt"
    assert document.feeds[0].tags == ("crypto", "tech")
    assert len(document.skipped) == 1
    assert "same URL as line 2" in str(document.skipped[0])


def test_non_http_urls_are_skipped_and_reported() -> None:
    document = read_opml(SCHEMES, source="mixed.opml")
    assert [f.url for f in document.feeds] == ["https://good.example/rss"]
    reasons = {s.text: s.reason for s in document.skipped}
    assert set(reasons) == {
        "Podcast app link",
        "Old FTP mirror",
        "Sneaky",
        "Relative",
        "Empty",
        "Bad port",
    }
    assert "'feed'" in reasons["Podcast app link"]
    assert "'ftp'" in reasons["Old FTP mirror"]
    assert "'javascript'" in reasons["Sneaky"]
    assert "relative" in reasons["Relative"]
    assert "empty" in reasons["Empty"]
    assert "malformed" in reasons["Bad port"]
    assert document.skipped[0].line == 5
    assert str(document.skipped[0]).startswith("line 5: 'Podcast app link' <feed://")


def test_only_non_http_urls_is_an_error() -> None:
    data = b"""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Podcast" xmlUrl="feed://podcasts.example/rss"/>
    </body></opml>"""
    with pytest.raises(ConfigError, match=r"^only\.opml: no usable feeds: all 1 skipped"):
        parse_opml(data, source="only.opml")


def test_malformed_xml_names_line_and_column() -> None:
    data = b"""<?xml version="1.0"?>
<opml version="2.0"><head/><body>
  <outline text="A" xmlUrl="https://a.example/rss">
</body></opml>"""
    with pytest.raises(ConfigError) as caught:
        parse_opml(data, source="broken.opml")
    message = str(caught.value)
    assert message.startswith("broken.opml: not well-formed XML: mismatched tag")
    assert "line 4, column 3" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no element found"),
        (b"\xff\xfe\x00garbage", "not well-formed"),
        (b'<opml><body><outline xmlUrl="https://a.example/rss" x:y="1"/></body></opml>', "unbound"),
    ],
)
def test_not_xml_at_all(data: bytes, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"^f\.opml: .*{reason}"):
        parse_opml(data, source="f.opml")


def test_an_rss_feed_is_not_opml() -> None:
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    with pytest.raises(ConfigError, match=r"root element is <rss>, not <opml>"):
        parse_opml(data, source="feed.xml")


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^bomb\.opml: line 2: <!DOCTYPE> is not allowed"):
        parse_opml(BILLION_LAUGHS, source="bomb.opml")


def test_entity_declaration_without_doctype_is_refused() -> None:
    data = b'<?xml version="1.0"?>\n<!ENTITY x "y">\n<opml><body/></opml>'
    with pytest.raises(ConfigError, match=r"<!ENTITY> is not allowed"):
        parse_opml(data, source="e.opml")


def test_doctype_in_utf16_is_refused_by_the_parser() -> None:
    # The raw bytes hold no ASCII "<!DOCTYPE"; the parser's handler still refuses it.
    data = BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "").encode("utf-16")
    assert b"<!DOCTYPE" not in data
    with pytest.raises(ConfigError, match=r"DOCTYPE> is not allowed"):
        parse_opml(data, source="wide.opml")


def test_empty_body_is_an_error() -> None:
    data = b'<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body/></opml>'
    with pytest.raises(ConfigError, match=r"^empty\.opml: no feeds: no <outline>"):
        parse_opml(data, source="empty.opml")


def test_folders_without_feeds_is_an_error() -> None:
    data = b"""<?xml version="1.0"?><opml version="2.0"><head/><body>
      <outline text="Markets"><outline text="Empty folder"/></outline>
    </body></opml>"""
    with pytest.raises(ConfigError, match=r"no feeds"):
        parse_opml(data, source="folders.opml")


def test_missing_body_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"no <body>"):
        parse_opml(b"<opml version='2.0'><head/></opml>", source="nobody.opml")


def test_opml_feed_is_frozen() -> None:
    feed = parse_opml(NESTED, source="reader.opml")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        feed.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Börsen-Zeitung", "borsen-zeitung"),
        ("Barron\u2019s", "barrons"),
        ("S&P Global  Ratings", "s-p-global-ratings"),
        ("--Already-a-slug--", "already-a-slug"),
        ("日本", ""),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


# --- writing ----------------------------------------------------------------------------


def test_render_is_opml_2_0() -> None:
    feeds = parse_opml(NESTED, source="reader.opml")
    data = render_opml(feeds, title="aggregator feeds", now=NOW)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(data)  # an independent parser accepts it
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "aggregator feeds"
    created = root.findtext("head/dateCreated")
    assert created == "Tue, 04 Mar 2025 05:06:07 GMT"
    assert parsedate_to_datetime(created) == NOW
    outlines = root.findall("body/outline")
    assert len(outlines) == len(feeds)
    first = outlines[0]
    assert first.get("type") == "rss"
    assert first.get("text") == first.get("title") == "FXStreet"
    assert first.get("xmlUrl") == "https://www.fxstreet.com/rss/news"
    assert first.get("htmlUrl") == "https://www.fxstreet.com/"
    assert first.get("category") == "/markets,/fx"
    assert outlines[4].get("htmlUrl") is None and outlines[4].get("category") is None


def test_render_date_is_converted_to_gmt() -> None:
    eastern = datetime(2025, 3, 4, 0, 6, 7, tzinfo=timezone(timedelta(hours=-5)))
    naive = datetime(2025, 3, 4, 5, 6, 7)
    for now in (eastern, naive):
        root = ET.fromstring(render_opml([], title="t", now=now))
        assert root.findtext("head/dateCreated") == "Tue, 04 Mar 2025 05:06:07 GMT"


def test_render_escapes_quotes_markup_newlines_and_drops_invalid_characters() -> None:
    feed = OpmlFeed(
        name="odd",
        publisher='He said "buy" & <sell>\x00\x0b',
        url="https://example.com/rss?a=1&b=2",
        tags=("Central Bank", "fx"),
    )
    data = render_opml([feed], title='My "feeds" & <more>\nsecond line', now=NOW)
    assert b'text="He said &quot;buy&quot; &amp; &lt;sell&gt;"' in data
    assert b'xmlUrl="https://example.com/rss?a=1&amp;b=2"' in data
    assert b'<title>My "feeds" &amp; &lt;more&gt; second line</title>' in data
    outline = ET.fromstring(data).find("body/outline")
    assert outline is not None
    assert outline.get("text") == 'He said "buy" & <sell>'
    assert outline.get("category") == "/central-bank,/fx"


def test_round_trip_keeps_names_publishers_urls_tags_and_sites() -> None:
    feeds = [
        *parse_opml(NESTED, source="a.opml"),
        *parse_opml(ODD, source="b.opml"),
        *parse_opml(OLD_READER, source="c.opml"),
    ]
    # Names as config.toml would have them, not derived from the publisher.
    feeds = [dataclasses.replace(f, name=f"feed_{i}-{f.name}"[:64]) for i, f in enumerate(feeds)]
    again = parse_opml(render_opml(feeds, title="round trip", now=NOW), source="rt.opml")
    assert again == feeds


def test_round_trip_of_the_repository_config() -> None:
    settings = load_settings(REPO_CONFIG)
    feeds = [OpmlFeed(f.name, f.publisher, f.url, f.tags, None) for f in settings.feeds]
    again = parse_opml(render_opml(feeds, title="config.toml", now=NOW), source="rt.opml")
    assert again == feeds


def test_read_without_our_name_attribute_derives_names_again() -> None:
    feed = OpmlFeed("cnbc-top", "CNBC", "https://cnbc.example/rss", ("markets",), None)
    data = render_opml([feed], title="t", now=NOW).replace(b' aggregator:name="cnbc-top"', b"")
    assert parse_opml(data, source="rt.opml") == [dataclasses.replace(feed, name="cnbc")]


# --- config.toml ------------------------------------------------------------------------


def settings_of(text: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    settings = settings_from_mapping(tomllib.loads(text), source=None, base_dir=Path("/tmp"))
    return [(f.name, f.publisher, f.url, f.tags) for f in settings.feeds]


def existing(text: str) -> tuple[set[str], set[str]]:
    settings = settings_from_mapping(tomllib.loads(text), source=None, base_dir=Path("/tmp"))
    return {f.name for f in settings.feeds}, {f.url for f in settings.feeds}


def test_append_to_the_repository_config() -> None:
    original = REPO_CONFIG.read_text(encoding="utf-8")
    names, urls = existing(original)
    imported = parse_opml(NESTED, source="reader.opml") + parse_opml(ODD, source="odd.opml")
    text, added, skipped = append_feeds_to_config(original, imported, names, urls)

    assert text.startswith(original)
    assert text[len(original) :].startswith(f"\n{IMPORT_COMMENT}\n[[feeds]]\n")
    assert text.count(IMPORT_COMMENT) == 1
    # FXStreet, ForexLive, MarketWatch, CoinDesk and the Fed are in config.toml already.
    assert [f.publisher for f in skipped] == [
        "FXStreet",
        "ForexLive",
        "MarketWatch",
        "CoinDesk",
        "Federal Reserve",
    ]
    assert [f.url for f in added] == [f.url for f in parse_opml(ODD, source="odd.opml")]
    loaded = settings_of(text)
    assert len(loaded) == len(names) + len(added)
    assert loaded[-len(added) :] == [(f.name, f.publisher, f.url, f.tags) for f in added]


def test_append_escapes_toml_strings() -> None:
    nasty = OpmlFeed(
        name="nasty",
        publisher='Quote " back\\slash \t tab ünïcødé 日本 \x7f\x1b end',
        url='https://example.com/rss?q="x"&path=C:\\dir',
        tags=('we"ird', "back\\slash", "Märkte"),
        site_url="https://example.com/",
    )
    text, added, _ = append_feeds_to_config("", [nasty], set(), set())
    document = tomllib.loads(text)
    (entry,) = document["feeds"]
    assert entry["publisher"] == 'Quote " back\\slash tab ünïcødé 日本 \x7f\x1b end'
    assert entry["url"] == nasty.url
    assert entry["tags"] == list(nasty.tags)
    assert added[0].publisher == entry["publisher"]
    assert "# site: https://example.com/" in text
    assert settings_of(text) == [("nasty", entry["publisher"], nasty.url, nasty.tags)]


def test_append_renames_clashing_names() -> None:
    original = (
        '[[feeds]]\nname = "coindesk"\nurl = "https://one.example/rss"\n\n'
        '[[feeds]]\nname = "coindesk-2"\nurl = "https://two.example/rss"\n'
    )
    feeds = [
        OpmlFeed("coindesk", "CoinDesk", "https://three.example/rss"),
        OpmlFeed("coindesk", "CoinDesk", "https://four.example/rss"),
        OpmlFeed("markets", "Markets", "https://five.example/rss"),
        OpmlFeed("x" * 64, "Long", "https://six.example/rss"),
        OpmlFeed("Not A Slug!", "Whatever", "https://seven.example/rss"),
    ]
    # existing_names given by the caller need not list what the file already has.
    text, added, skipped = append_feeds_to_config(original, feeds, {"markets", "x" * 64}, set())
    assert skipped == []
    assert [f.name for f in added] == [
        "coindesk-3",
        "coindesk-4",
        "markets-2",
        "x" * 62 + "-2",
        "not-a-slug",
    ]
    assert [name for name, *_ in settings_of(text)] == ["coindesk", "coindesk-2"] + [
        f.name for f in added
    ]


def test_append_skips_duplicates_by_url() -> None:
    original = '[[feeds]]\nname = "decrypt"\nurl = "https://decrypt.co/feed"\n'
    feeds = [
        OpmlFeed("decrypt", "Decrypt", "HTTPS://DECRYPT.CO/feed"),  # in the file
        OpmlFeed("known", "Known", "https://known.example/rss"),  # in existing_urls
        OpmlFeed("new", "New", "https://new.example/rss"),
        OpmlFeed("new-again", "New again", "https://new.example/rss#top"),  # earlier in feeds
    ]
    text, added, skipped = append_feeds_to_config(
        original, feeds, set(), {"https://known.example/rss"}
    )
    assert [f.name for f in added] == ["new"]
    assert [f.name for f in skipped] == ["decrypt", "known", "new-again"]
    assert settings_of(text)[-1] == ("new", "New", "https://new.example/rss", ())


def test_append_nothing_returns_the_text_unchanged() -> None:
    original = '# my feeds\n[[feeds]]\nname = "a"\nurl = "https://a.example/rss"\n'
    feed = OpmlFeed("a", "A", "https://a.example/rss")
    assert append_feeds_to_config(original, [feed], {"a"}, set()) == (original, [], [feed])
    assert append_feeds_to_config(original, [], set(), set()) == (original, [], [])


def test_append_after_a_file_without_final_newline_or_with_crlf() -> None:
    feed = OpmlFeed("new", "New", "https://new.example/rss", ("fx",))
    no_newline = '[polling]\ninterval = "15m" # no newline at the end'
    text, _, _ = append_feeds_to_config(no_newline, [feed], set(), set())
    assert text.startswith(no_newline)
    assert text == no_newline + (
        '\n\n# imported from OPML\n[[feeds]]\nname = "new"\npublisher = "New"\n'
        'url = "https://new.example/rss"\ntags = ["fx"]\n'
    )
    crlf = '# windows\r\n[polling]\r\ninterval = "15m"\r\n'
    text, _, _ = append_feeds_to_config(crlf, [feed], set(), set())
    assert text.startswith(crlf)
    assert "\n" not in text.replace("\r\n", "")
    assert settings_of(text) == [("new", "New", "https://new.example/rss", ("fx",))]


def test_append_to_an_empty_config() -> None:
    feeds = parse_opml(NESTED, source="reader.opml")
    text, added, skipped = append_feeds_to_config("", feeds, set(), set())
    assert text.startswith(f"{IMPORT_COMMENT}\n[[feeds]]\n")
    assert skipped == [] and added == feeds
    assert settings_of(text) == [(f.name, f.publisher, f.url, f.tags) for f in feeds]


@pytest.mark.parametrize(
    ("original", "reason"),
    [
        ('[polling\ninterval = "15m"\n', "not valid TOML"),
        ('feeds = [{ name = "a", url = "https://a.example/rss" }]\n', "inline array"),
    ],
)
def test_append_refuses_text_it_cannot_extend(original: str, reason: str) -> None:
    feed = OpmlFeed("new", "New", "https://new.example/rss")
    with pytest.raises(ConfigError, match=reason):
        append_feeds_to_config(original, [feed], set(), set())


def test_append_refuses_a_feed_without_an_http_url() -> None:
    feed = OpmlFeed("bad", "Bad", "ftp://bad.example/rss")
    with pytest.raises(ConfigError, match=r"feed 'bad': not an http\(s\) URL"):
        append_feeds_to_config("", [feed], set(), set())


def test_names_ending_in_a_dash_or_underscore_are_kept() -> None:
    feeds = [
        OpmlFeed("fx-", "FX", "https://fx.example/rss"),
        OpmlFeed("_x", "X", "https://x.example/"),
    ]
    again = parse_opml(render_opml(feeds[:1], title="t", now=NOW), source="rt.opml")
    assert [f.name for f in again] == ["fx-"]
    text, added, _ = append_feeds_to_config("", feeds, {"fx-"}, set())
    assert [f.name for f in added] == ["fx-2", "x"]
    assert [name for name, *_ in settings_of(text)] == ["fx-2", "x"]
