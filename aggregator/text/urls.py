"""URLs: the canonical form items are matched by, and the hosts a page links to."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

# Query parameters that only identify the campaign or click, never the resource.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "cmpid",
        "ncid",
        "ocid",
        "sr_share",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """A comparable form of an article URL.

    Lower-case scheme and host, no default port, no fragment, no tracking
    parameters, remaining parameters sorted. Returns None for empty input and
    the stripped input when it cannot be split as a URL.
    """
    if url is None:
        return None
    text = "".join(ch for ch in url if ch >= " " and ch != "\x7f").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return text
    host = parts.hostname.lower().rstrip(".")
    if not host:
        return text
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    # Existing escapes are kept as they are ("%2F" is not "/"); only characters
    # that must be escaped are, so the result is stable under a second pass.
    path = _quote(parts.path) or "/"
    pairs = sorted(
        _quote(pair)
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote(pair.split("=", 1)[0]))
    )
    return urlunsplit((scheme, host, path, "&".join(pairs), ""))


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


def _quote(text: str) -> str:
    """RFC 3986 normalisation: escapes of unreserved characters decoded, hex upper-cased."""
    quoted = quote(text, safe="/:@!$&'()*+,;=-._~%?", errors="surrogatepass")
    return _ESCAPE.sub(_normal_escape, quoted)


_HREF = re.compile(r"""href\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)


def site_host(url: str | None) -> str | None:
    """A URL's host, lower-case, without "www." (the part sites are compared by)."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def link_hosts(html: str) -> frozenset[str]:
    """Hosts of the http(s) links in an HTML fragment."""
    return frozenset(h for h in (site_host(m) for m in _HREF.findall(html or "")) if h)
