"""Text helpers shared by the stages: HTML -> clean text, canonical URLs, words and
shingles, credit lines and ticker mentions (aggregator.dedup.prepare turns a body
into what the near-duplicate check compares).

Standard library only and pure, so any stage may call it; it never raises on odd
input because it runs on untrusted feed content. Modules: `markup` (HTML and plain
text -> stored text), `urls`, `tokens` (words, shingles, paragraph keys), `credits`
and `tickers`.
"""

from aggregator.text.credits import credited_publishers
from aggregator.text.markup import html_to_text, normalize_space, plain_text, single_line
from aggregator.text.tickers import extract_tickers
from aggregator.text.tokens import (
    is_figure,
    line_fingerprint,
    line_key,
    paragraphs,
    shingles,
    tokens,
    word_set,
)
from aggregator.text.urls import canonical_url, link_hosts, site_host

__all__ = [
    "canonical_url",
    "credited_publishers",
    "extract_tickers",
    "html_to_text",
    "is_figure",
    "line_fingerprint",
    "line_key",
    "link_hosts",
    "normalize_space",
    "paragraphs",
    "plain_text",
    "shingles",
    "single_line",
    "site_host",
    "tokens",
    "word_set",
]
