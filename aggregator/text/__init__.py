"""Text helpers shared by the stages: HTML -> clean text, canonical URLs, the words and
prepared bodies the near-duplicate check compares, credit lines and ticker mentions.

Standard library only and pure, so any stage may call it; it never raises on odd
input because it runs on untrusted feed content. Modules: `markup` (HTML and plain
text -> stored text), `urls`, `tokens` (words, shingles, paragraph keys), `prepare`
(bodies prepared for the verdict), `credits` and `tickers`.
"""

from aggregator.text.credits import credited_publishers
from aggregator.text.markup import html_to_text, normalize_space, plain_text, single_line
from aggregator.text.prepare import prepare_body, proper_names, signing_view, subject_of
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
    "prepare_body",
    "proper_names",
    "shingles",
    "signing_view",
    "single_line",
    "site_host",
    "subject_of",
    "tokens",
    "word_set",
]
