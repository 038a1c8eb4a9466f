"""URLs: the canonical form items are matched by, the hosts a page links to, and the
form a feed URL may be stored, logged or shown in (no credentials, no secret values)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

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


# --- secrets in URLs -------------------------------------------------------------------

REDACTED = "***"

# Query (and fragment) parameters whose value is a secret: the server needs it, so it is
# sent, but every URL the product stores, logs or prints shows it as "***". Names are
# compared lower-case with "-" read as "_"; a name ending in one of _SECRET_SUFFIXES
# counts too (client_secret, x-amz-signature, private_token, x-api-key).
SECRET_PARAMS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "apikey",
        "access_token",
        "access_key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "auth",
        "sig",
        "signature",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "jsessionid",
    }
)
_SECRET_SUFFIXES = (
    "_token",
    "_key",
    "_apikey",
    "_secret",
    "_password",
    "_sig",
    "_signature",
    "_credential",
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A URL inside free text (an error message, a log line, a JSON document): it ends at
# white space, a quote, a bracket or a backslash (JSON's escape).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\\]+")
_PAIR_SEPARATOR = re.compile(r"([&;])")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's value is taken for a secret (see SECRET_PARAMS)."""
    normal = unquote_plus(name).strip().lower().replace("-", "_")
    return normal in SECRET_PARAMS or normal.endswith(_SECRET_SUFFIXES)


def _authority_end(url: str, start: int) -> int:
    ends = [i for i in (url.find(ch, start) for ch in "/?#") if i != -1]
    return min(ends, default=len(url))


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without user:password@, user, password), the two percent-decoded.

    Everything but the userinfo is kept character for character; user and password
    are None when the URL has none.
    """
    match = _SCHEME.match(url)
    if match is None:
        return url, None, None
    end = _authority_end(url, match.end())
    userinfo, at, host = url[match.end() : end].rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    bare = url[: match.end()] + host + url[end:]
    return bare, unquote(user), unquote(password) if colon else None


def _redact_pairs(text: str) -> str:
    parts = _PAIR_SEPARATOR.split(text)
    for index in range(0, len(parts), 2):
        name, equals, value = parts[index].partition("=")
        if equals and value and is_secret_param(name):
            parts[index] = f"{name}={REDACTED}"
    return "".join(parts)


def redact_url(url: str) -> str:
    """The URL as the product stores, logs and shows it.

    No user:password@, and the value of every secret parameter (is_secret_param) in
    the query or fragment replaced by "***"; every other character is kept, so a URL
    without secrets comes back unchanged and a second pass changes nothing.
    """
    bare, _user, _password = split_userinfo(url)
    before, hash_mark, fragment = bare.partition("#")
    path, question, query = before.partition("?")
    shown = path + (f"?{_redact_pairs(query)}" if question else "")
    return shown + (f"#{_redact_pairs(fragment)}" if hash_mark else "")


def secret_query_values(url: str) -> tuple[tuple[str, str], ...]:
    """(name, value) of the query's secret parameters, as written (still escaped)."""
    query = url.partition("#")[0].partition("?")[2]
    found = []
    for pair in _PAIR_SEPARATOR.split(query)[::2]:
        name, equals, value = pair.partition("=")
        if equals and value and value != REDACTED and is_secret_param(name):
            found.append((name, value))
    return tuple(found)


def restore_secrets(url: str, values: Sequence[tuple[str, str]]) -> str:
    """redact_url undone for the query: each "name=***" gets the next value given for
    that name (from secret_query_values of the configured URL); others stay as they are."""
    before, hash_mark, fragment = url.partition("#")
    path, question, query = before.partition("?")
    if not question or not values:
        return url
    pending: dict[str, list[str]] = {}
    for name, value in values:
        pending.setdefault(name, []).append(value)
    parts = _PAIR_SEPARATOR.split(query)
    for index in range(0, len(parts), 2):
        name, _equals, value = parts[index].partition("=")
        if value == REDACTED and pending.get(name):
            parts[index] = f"{name}={pending[name].pop(0)}"
    return f"{path}?{''.join(parts)}" + (f"#{fragment}" if hash_mark else "")


def origin(url: str) -> str | None:
    """scheme://host:port, lower-case with the port spelled out: where a secret may go."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    host = parts.hostname.lower().rstrip(".")
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (an error, a log line) with every URL in it redacted (redact_url) and
    every given secret, as written or percent-encoded, replaced by "***"."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
            text = text.replace(form, REDACTED)
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
