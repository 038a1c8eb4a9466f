"""aggregator.text: canonical URLs and HTML -> text, both run on untrusted feed content."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest

from aggregator.text import canonical_url, html_to_text, normalize_space, single_line

# --- canonical_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # scheme and host are case-insensitive; the path is not
        ("HTTP://Example.COM/Path", "http://example.com/Path"),
        ("HTTPS://WWW.Example.com/A/b?B=C", "https://www.example.com/A/b?B=C"),
        # default ports dropped, others kept
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        # fragment removed
        ("https://example.com/story#comments", "https://example.com/story"),
        ("https://example.com/story?id=1#top", "https://example.com/story?id=1"),
        # empty path becomes "/"
        ("https://example.com", "https://example.com/"),
        ("https://example.com?b=1", "https://example.com/?b=1"),
        ("https://example.com#frag", "https://example.com/"),
        # remaining parameters sorted, blank values kept
        ("https://example.com/a?z=1&a=2&m=3", "https://example.com/a?a=2&m=3&z=1"),
        ("https://example.com/a?b=&a=1", "https://example.com/a?a=1&b="),
        ("https://example.com/a?id=2&id=1", "https://example.com/a?id=1&id=2"),
        # user info, trailing dot of the host and surrounding whitespace go away
        ("http://user:secret@Example.com/x", "http://example.com/x"),
        ("https://example.com./x", "https://example.com/x"),
        ("  https://example.com/x \n", "https://example.com/x"),
        # IPv6 literal keeps its brackets and a non-default port
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
        # unicode host lower-cased, non-ASCII path percent-encoded
        ("https://BÜCHER.de/straße", "https://bücher.de/stra%C3%9Fe"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        # unreserved characters need no escaping
        ("https://example.com/%7Euser", "https://example.com/~user"),
        # an encoded '&' inside a value stays part of the value
        ("https://example.com/s?q=a%26b", "https://example.com/s?q=a%26b"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "param",
    [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "UTM_Source",
        "utm_anything_new",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_hsenc",
        "mkt_tok",
        "pk_campaign",
        "mtm_source",
        "ncid",
        "cmpid",
    ],
)
def test_canonical_url_removes_tracking_parameter(param: str) -> None:
    url = f"https://news.example/markets/story?id=42&{param}=xyz&page=2"
    assert canonical_url(url) == "https://news.example/markets/story?id=42&page=2"


def test_canonical_url_keeps_other_parameters_sorted() -> None:
    url = (
        "https://news.example/q?utm_source=rss&symbol=AAPL&utm_medium=feed"
        "&fbclid=abc&exchange=NASDAQ&gclid=1&msclkid=2&range=1d"
    )
    assert canonical_url(url) == "https://news.example/q?exchange=NASDAQ&range=1d&symbol=AAPL"


def test_canonical_url_only_tracking_parameters_leaves_no_query() -> None:
    assert canonical_url("https://news.example/a?utm_source=x&gclid=y") == "https://news.example/a"


def test_canonical_url_parameter_names_that_merely_contain_tracking_words_are_kept() -> None:
    url = "https://news.example/a?not_utm=1&my_fbclid=2&source=3"
    assert canonical_url(url) == "https://news.example/a?my_fbclid=2&not_utm=1&source=3"


def test_tracking_variants_of_one_article_share_a_canonical_form() -> None:
    variants = [
        "https://News.Example/markets/oil?id=7",
        "https://news.example:443/markets/oil?id=7#section-2",
        "https://news.example/markets/oil?utm_source=twitter&id=7",
        "HTTPS://news.example/markets/oil?id=7&fbclid=IwAR0&utm_medium=social",
    ]
    assert {canonical_url(v) for v in variants} == {"https://news.example/markets/oil?id=7"}


@pytest.mark.parametrize("url", [None, "", "   ", "\t\n", "\x00\x01"])
def test_canonical_url_empty_input_is_none(url: str | None) -> None:
    assert canonical_url(url) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("mailto:desk@news.example", "mailto:desk@news.example"),
        ("tag:news.example,2026:story-1", "tag:news.example,2026:story-1"),
        ("//news.example/a", "//news.example/a"),
        ("/relative/path", "/relative/path"),
        ("http://[::1", "http://[::1"),
        ("http://example.com:99999/", "http://example.com:99999/"),
    ],
)
def test_canonical_url_returns_unusable_urls_stripped_but_unchanged(
    url: str, expected: str
) -> None:
    assert canonical_url(f"  {url}  ") == expected


def test_canonical_url_removes_control_characters() -> None:
    assert canonical_url("https://exa\x00mple.com/a\x07b\x7fc") == "https://example.com/abc"


TRICKY_URLS = [
    "HTTP://Example.COM:80/a?b=2&a=1&utm_source=x#frag",
    "https://example.com:443",
    "https://example.com",
    "https://example.com/?",
    "https://example.com/?#",
    "https://example.com/a?b",
    "https://example.com/a?=x",
    "https://example.com/a?q=a+b",
    "https://example.com/a?q=%20+",
    "https://example.com/a?q=%2B",
    "https://example.com/a?q=%25",
    "https://example.com/a?q=%2541",
    "https://example.com/a?q=%E2%80%A8",
    "https://example.com/a?x=1;y=2",
    "https://example.com/a;param?x",
    "https://example.com/a%3Fb",
    "https://example.com/a%23b",
    "https://example.com/%",
    "https://example.com/%%",
    "https://example.com/%zz",
    "https://example.com/a b/ü",
    "https://example.com/\u2028x",
    "https://example.com/a/../b/./c",
    "https://BÜCHER.de/straße?q=ü",
    "https://xn--bcher-kva.de/",
    "http://[::1]:8080/x",
    "http://[::FFFF:1.2.3.4]/",
    "http://[fe80::1%25eth0]/",
    "http://[::1",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://example.com:80:80/",
    "http://example.com./x",
    "http://user:pw@Example.com/",
    "https://ex.com\\@evil.com/",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "tag:news.example,2026:1",
    "//example.com/x",
    "not a url at all",
    "http://",
    "https://",
    "http:///x",
    "http://exa\x00mple.com/a\x07b",
    "https://example.com/?utm_source=a&utm_medium=b",
]


@pytest.mark.parametrize("url", TRICKY_URLS)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


# Regression: decoding "%25" to '%' without re-escaping it made '/%2541' -> '/%41' -> '/A'.
@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/%2541",
        "https://example.com/report%252F2026",
        "https://example.com/%25%32%35",
    ],
)
def test_canonical_url_is_idempotent_with_escaped_percent_in_path(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


# Control characters are removed before whitespace is stripped, also on the fallback branch.
def test_canonical_url_is_idempotent_with_whitespace_before_a_control_character() -> None:
    once = canonical_url("http://[::1 \x00")
    assert canonical_url(once) == once


def test_canonical_url_trailing_whitespace_and_control_characters_are_ignored() -> None:
    assert canonical_url("https://example.com/a \x00") == "https://example.com/a"


# Regression: only escapes of unreserved characters may be decoded (RFC 3986 6.2.2.2), and
# bytes that are not UTF-8 must survive, or different resources share one canonical URL.
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://example.com/a%2Fb", "https://example.com/a/b"),
        ("https://example.com/caf%E9", "https://example.com/caf%E8"),
        ("https://example.com/%FF", "https://example.com/%FE"),
    ],
)
def test_canonical_url_keeps_distinct_urls_distinct(first: str, second: str) -> None:
    assert canonical_url(first) != canonical_url(second)


# A host of only dots must not let a "//" path be read back as another host.
@pytest.mark.parametrize(
    "url",
    ["http://.//evil.example/x", "https://..//evil.example/", "https://.:443//evil.example/a"],
)
def test_canonical_url_does_not_move_an_empty_host_into_the_path(url: str) -> None:
    result = canonical_url(url)
    assert result is not None
    assert "evil.example" not in (urlsplit(result).hostname or "")
    assert canonical_url(result) == result


GARBAGE_URLS: list[str | None] = [
    None,
    "",
    "   ",
    "http://[::1",
    "http://[",
    "http://]",
    "http://[::1]:notaport/",
    "http://example.com:-1/",
    "http://example.com:65536/",
    "javascript:alert(1)",
    "http://\u2603.example/☃",
    "https://例え.テスト/パス?キー=値",
    "http://\x00\x01\x02\x1f\x7f",
    "http://exa mple.com/",
    "http://%zz/",
    "http://%ff%fe/",
    "\ud800",
    "::::",
    "?#",
    "#",
    "http://a" * 2000,
    "https://example.com/" + "%" * 500,
    "https://example.com/?" + "&" * 500 + "=",
]


@pytest.mark.parametrize("url", GARBAGE_URLS)
def test_canonical_url_never_raises(url: str | None) -> None:
    result = canonical_url(url)
    assert result is None or isinstance(result, str)
    if result is not None:
        assert result == result.strip()
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in result)


# A lone surrogate must not make quoting raise UnicodeEncodeError.
@pytest.mark.parametrize("url", ["http://example.com/\ud800", "http://example.com/?a=\udfff"])
def test_canonical_url_never_raises_on_lone_surrogates(url: str) -> None:
    result = canonical_url(url)
    assert result is None or isinstance(result, str)


def test_canonical_url_never_raises_on_random_input() -> None:
    rng = random.Random(20261125)
    pieces = [
        *"aZ09/?#&=%:@.[];+ -_~\\",
        "%25",
        "%2F",
        "%FF",
        "\x00",
        "\t",
        "é",
        "utm_source=1",
        "::1",
        ":80",
        ":443",
    ]
    prefixes = ["http://", "https://", "HTTP://", "http://EX.com", "https://ex.com:443", ""]
    for _ in range(3000):
        url = rng.choice(prefixes) + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        result = canonical_url(url)
        assert result is None or isinstance(result, str), url


# --- html_to_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # paragraphs and other blocks become separate lines
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("<div><p>x</p>\n\n\n<p>y</p></div>", "x\ny"),
        ("<p>a<br>b<br/>c</p>", "a\nb\nc"),
        ("<ul><li>1</li><li>2</li></ul>", "1\n2"),
        ("<h1>Head</h1>Body", "Head\nBody"),
        ("<table><tr><td>EUR</td></tr><tr><td>USD</td></tr></table>", "EUR\nUSD"),
        ("<br><br><br>x", "x"),
        # inline markup only disappears
        ('<a href="https://x">link</a> text', "link text"),
        ("<b>bold</b> and <em>em</em>", "bold and em"),
        # non-prose elements are dropped with their content
        ("<p>a</p><script>alert(1)</script><p>b</p>", "a\nb"),
        ("a<style>p { color: red }</style>b", "ab"),
        ("a<iframe src='https://ads.example'>fallback</iframe>b", "ab"),
        ("<SCRIPT>x()</SCRIPT>ok", "ok"),
        ("x<script>a</script >y", "xy"),
        ("<script type='text/javascript'><!-- var a = '<p>'; --></script>ok", "ok"),
        ("<noscript>enable js</noscript>ok", "ok"),
        ("<svg><text>chart</text></svg>ok", "ok"),
        ("<object>obj</object><embed>ok", "ok"),
        ("<title>T</title>body", "body"),
        ("<form><button>Subscribe</button></form>ok", "ok"),
        ("<template><p>hidden</p></template>ok", "ok"),
        ("<script/>kept", "kept"),
        ("<iframe/>kept", "kept"),
        ("</script>kept", "kept"),
        # entities decoded
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("Jerry&#8217;s", "Jerry\u2019s"),
        ("Jerry&#x2019;s", "Jerry\u2019s"),
        ("a&nbsp;b", "a b"),
        ("a&nbsp;&nbsp;&nbsp;b", "a b"),
        # escaped markup stays text that no HTML renderer will read as a tag
        ("&lt;script&gt;", "\uff1cscript>"),
        ("&euro;5 &mdash; &quot;q&quot;", '\u20ac5 \u2014 "q"'),
        ("AT&T", "AT&T"),
        # whitespace collapsed, lines trimmed
        ("a   b\t\tc", "a b c"),
        ("  <p>  spaced   out  </p>  ", "spaced out"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\u2003b\u200bc\u3000d", "a b c d"),
        # NUL and other control characters removed
        ("a\x00b\x07c\x1bd", "abcd"),
        ("<p>x\x00y</p>", "xy"),
        ("&#0;ok", "\ufffdok"),
        # comments, declarations and processing instructions dropped
        ("<!-- comment -->x", "x"),
        ("<!DOCTYPE html><p>x</p>", "x"),
        ("<?php echo 1 ?>z", "z"),
        # plain text passes through
        ("Plain text", "Plain text"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
        ("", ""),
        (None, ""),
    ],
)
def test_html_to_text(html: str | None, expected: str) -> None:
    assert html_to_text(html) == expected


# Regression: in HTML (outside <pre>) a source newline is plain whitespace, so a wrapped
# paragraph must stay one line.
@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Copper rose\n2% on the LME.</p>", "Copper rose 2% on the LME."),
        ("<p>one\r\ntwo</p><p>three</p>", "one two\nthree"),
        ("Tom &amp;\nJerry", "Tom & Jerry"),
    ],
)
def test_html_to_text_treats_source_newlines_as_spaces(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_html_to_text_keeps_paragraph_text_in_order() -> None:
    html = (
        "<article><h2>Copper</h2><p>Copper rose 2% on the LME.</p>"
        "<figure><img src='chart.png'><figcaption>Chart</figcaption></figure>"
        "<p>Traders cited &ldquo;strong&rdquo; demand.</p></article>"
    )
    assert html_to_text(html).split("\n") == [
        "Copper",
        "Copper rose 2% on the LME.",
        "Chart",
        "Traders cited \u201cstrong\u201d demand.",
    ]


BROKEN_MARKUP = [
    "<p>unclosed <b>bold",
    "<script>never closed",
    "<style>never closed",
    "<iframe>",
    "</p></div>text",
    "<<<>>>",
    "<",
    "&",
    "&#",
    "&#x;",
    "&#xD800;&#x110000;&#99999999999;",
    "<p\x00>x",
    "<a href='",
    '<a href="x',
    "<!--",
    "<!-- never closed",
    "<![CDATA[x",
    "<![if !IE]>x<![endif]>",
    "<!DOCTYPE",
    "<?xml",
    "<scr<script>ipt>x</script>",
    "<div " + "a=b " * 2000,
    "<b>" * 5000,
    "</b>" * 5000,
    "<p>\ud800</p>",
    "\x00" * 100,
    "<table><tr><td>cell",
    "<math><mi>x</mi>",
    "<svg><script>alert(1)</script>",
    "<p>" + "x" * 100_000,
]


@pytest.mark.parametrize("html", BROKEN_MARKUP, ids=range(len(BROKEN_MARKUP)))
def test_html_to_text_never_raises_on_broken_markup(html: str) -> None:
    text = html_to_text(html)
    assert isinstance(text, str)
    assert "\x00" not in text
    assert text == text.strip()


def test_html_to_text_never_raises_on_random_markup() -> None:
    rng = random.Random(7)
    pieces = [
        "<p>",
        "</p>",
        "<script>",
        "</script>",
        "<style>",
        "<br/>",
        "<",
        ">",
        "&",
        "&amp;",
        "&#",
        ";",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        '"',
        "'",
        "=",
        "word",
        " ",
        "\n",
        "\x00",
        "\x1b",
        "é",
        "<a href=",
        "</",
        "<!",
        "<?",
    ]
    for _ in range(2000):
        html = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        text = html_to_text(html)
        assert "\x00" not in text and "\x1b" not in text, html
        assert "\n\n" not in text, html


def test_html_to_text_drops_script_content_even_when_hostile() -> None:
    html = (
        "<p>Safe</p><script>document.write('<p>injected</p>')</script>"
        "<style>@import 'x';</style><iframe><p>framed</p></iframe><p>Also safe</p>"
    )
    text = html_to_text(html)
    assert text == "Safe\nAlso safe"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Fed  holds\n rates ", "Fed holds rates"),
        ("<b>Oil</b> &amp; gas", "Oil & gas"),
        ("<p>One</p><p>Two</p>", "One Two"),
        ("Line\r\nbreak\ttab", "Line break tab"),
        ("Title<script>alert(1)</script>", "Title"),
        ("a\x00b", "ab"),
        ("\u2028x\u2029y", "x y"),
        ("", ""),
        (None, ""),
    ],
)
def test_single_line(text: str | None, expected: str) -> None:
    assert single_line(text) == expected


@pytest.mark.parametrize("text", ["<p>a</p>\n<p>b</p>", "x\ny\rz", "<br>" * 3 + "a"])
def test_single_line_has_no_line_breaks(text: str) -> None:
    assert "\n" not in single_line(text)
    assert "\r" not in single_line(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a  b", "a b"),
        ("a\n\n\nb", "a\nb"),
        ("  a  \n  b  ", "a\nb"),
        ("a\x00\x01b", "ab"),
        ("tab\there", "tab here"),
    ],
)
def test_normalize_space(text: str, expected: str) -> None:
    assert normalize_space(text) == expected


def test_html_to_text_defuses_a_tag_that_removing_controls_joins() -> None:
    # Found by tests/reliability/test_properties.py: "<\x1f?" became "<?" on the first
    # pass and its defused form (full-width less-than) on the second.
    once = html_to_text("<\x1fscript>alert(1)")
    assert "<script" not in once.lower()
    assert html_to_text(once) == once
