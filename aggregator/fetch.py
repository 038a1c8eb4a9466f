"""HTTP only: one conditional GET per feed -> FetchResult. The only httpx importer.

Every failure is returned as data (outcome + error text) so a poll never
raises because of one feed. Redirects are followed here rather than by httpx
so that each hop's scheme is checked and permanent moves can be told apart; a
move is reported only when its target answered (2xx or 304).

Compressed bodies are inflated here (`_decoded`), in bounded pieces, and one
whose compressed stream never reaches its end is a fetch error, not a short feed.

httpx's timeouts bound each network read, not the whole response, so a server
that drips a byte a second would hold a fetch forever. `_Deadline` enforces
`timeout` over the whole fetch (all hops, headers and body) by shutting the
connection's socket down when the time is up.

Credentials (models.FeedCredentials) are sent only to the configured URL's origin:
HTTP Basic auth, and the secret query values the stored URL shows as "***". No hop to
another host, port or scheme gets them. Every URL and error text in a FetchResult is
redacted (aggregator.text.urls), so nothing downstream can store or log a secret; a
permanent move whose target would not survive that is followed but not reported.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import brotli
import httpx

from aggregator.models import FeedCredentials, FetchOutcome, FetchRequest, FetchResult
from aggregator.text.urls import origin, redact_text, redact_url, restore_secrets

MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
_RETRY_AFTER_STATUSES = {429, 503}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


class Fetcher:
    """Owns one connection pool; safe to share between fetch worker threads."""

    def __init__(self) -> None:
        self._client = httpx.Client(
            follow_redirects=False,
            # Only what _decoded() can inflate within the body cap.
            headers={"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate, br"},
            # No keep-alive: every fetch opens its own connection, the only moment at
            # which _Deadline can get hold of the socket it must be able to cut.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            trust_env=False,
            # httpx parses a Location before handing the response back, and fails on
            # some non-http ones ("javascript:x") with an error that names neither.
            event_hooks={"response": [_refuse_foreign_redirect]},
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(self, request: FetchRequest) -> FetchResult:
        started = time.monotonic()
        deadline = started + request.polling.timeout
        credentials = request.credentials
        secrets = credentials.secrets() if credentials is not None else ()
        # `url` is what is sent (secrets filled in); results carry it redacted.
        url = _sendable(request.url, credentials)
        permanent_url: str | None = None
        only_permanent_so_far = True

        def result(
            outcome: FetchOutcome, *, error: str | None = None, **fields: Any
        ) -> FetchResult:
            return FetchResult(
                requested_url=redact_url(request.url),
                final_url=redact_url(url),
                outcome=outcome,
                # A move is reported only once its target has answered: a 2xx read whole,
                # or a 304. A 301 to a page that fails (a 404, a login wall, an outage)
                # would otherwise replace the feed's URL with a dead one for good.
                permanent_url=None if outcome.is_error else permanent_url,
                elapsed=time.monotonic() - started,
                # httpx and the OS may quote the URL, or a part of it, in their reasons.
                error=None if error is None else redact_text(error, secrets),
                **fields,
            )

        if credentials is not None and credentials.missing:
            return result(FetchOutcome.REFUSED, error=credentials.missing)

        headers = {"User-Agent": request.polling.user_agent}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        timeout = httpx.Timeout(request.polling.timeout)

        def attempt(watchdog: _Deadline) -> FetchResult:
            nonlocal url, permanent_url, only_permanent_so_far
            for _hop in range(MAX_REDIRECTS + 1):
                try:
                    with self._client.stream(
                        "GET",
                        url,
                        headers=headers,
                        auth=_auth_for(url, credentials),
                        timeout=timeout,
                        extensions={"trace": watchdog.trace},
                    ) as response:
                        status = response.status_code
                        if status in _REDIRECTS and "location" in response.headers:
                            target = urljoin(url, response.headers["location"].strip())
                            if only_permanent_so_far and status in _PERMANENT:
                                # Stored redacted, the target must still fetch: one whose
                                # secrets the config cannot fill back in (a token in a
                                # move to another host, a user:password@) is not stored.
                                shown = redact_url(target)
                                lossless = _sendable(shown, credentials) == target
                                permanent_url = shown if lossless else None
                            else:
                                only_permanent_so_far = False
                            url = target
                            continue
                        return self._read(response, request, deadline, result)
                except _ForeignRedirect as e:
                    return result(
                        FetchOutcome.REFUSED,
                        status=e.status,
                        error="refused redirect to a non-http(s) URL: "
                        + redact_url(e.target)[:200],
                    )
                except httpx.TimeoutException:
                    return result(
                        FetchOutcome.TIMEOUT,
                        error=f"timed out after {request.polling.timeout:g}s",
                    )
                except httpx.DecodingError as e:
                    return result(FetchOutcome.NETWORK_ERROR, error=f"bad response encoding: {e}")
                except httpx.InvalidURL as e:
                    return result(FetchOutcome.REFUSED, error=f"invalid URL: {e}")
                except httpx.TransportError as e:
                    return result(FetchOutcome.NETWORK_ERROR, error=_describe_transport_error(e))
                except httpx.HTTPError as e:
                    return result(FetchOutcome.NETWORK_ERROR, error=f"HTTP error: {e}")
            return result(
                FetchOutcome.REFUSED,
                error=f"more than {MAX_REDIRECTS} redirects, last to {redact_url(url)[:200]}",
            )

        with _Deadline(request.polling.timeout) as watchdog:
            fetched = attempt(watchdog)
        if watchdog.expired and fetched.outcome is FetchOutcome.NETWORK_ERROR:
            # A connection cut by the watchdog looks like a lost one to httpx.
            return result(
                FetchOutcome.TIMEOUT,
                status=fetched.status,
                bytes_read=fetched.bytes_read,
                error=f"timed out after {request.polling.timeout:g}s",
            )
        return fetched

    @staticmethod
    def _read(
        response: httpx.Response,
        request: FetchRequest,
        deadline: float,
        result: _ResultFactory,
    ) -> FetchResult:
        status = response.status_code
        validators = {
            "etag": response.headers.get("etag"),
            "last_modified": response.headers.get("last-modified"),
        }
        max_age = _max_age(response.headers.get("cache-control"))
        if status == 304:
            return result(FetchOutcome.NOT_MODIFIED, status=status, max_age=max_age, **validators)
        if status == 410:
            return result(FetchOutcome.GONE, status=status, error="HTTP 410 Gone")
        if status >= 400 or status < 200:
            retry_after = (
                _retry_after(response.headers.get("retry-after"))
                if status in _RETRY_AFTER_STATUSES
                else None
            )
            reason = response.reason_phrase or ""
            return result(
                FetchOutcome.HTTP_ERROR,
                status=status,
                retry_after=retry_after,
                error=f"HTTP {status} {reason}".strip(),
            )

        cap = request.polling.max_bytes
        declared = response.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and int(declared) > cap
            and "content-encoding" not in response.headers
        ):
            return result(
                FetchOutcome.TOO_LARGE,
                status=status,
                bytes_read=0,
                error=f"body of {int(declared)} bytes is over the {cap}-byte cap",
            )
        chunks: list[bytes] = []
        size = 0
        # Decompressed here in bounded pieces (not by httpx, which inflates a whole
        # network read at once), so a few KB that inflate to gigabytes stop at the cap.
        for chunk in _decoded(response):
            size += len(chunk)
            if size > cap:
                return result(
                    FetchOutcome.TOO_LARGE,
                    status=status,
                    bytes_read=size,
                    error=f"body is over the {cap}-byte cap",
                )
            if time.monotonic() > deadline:
                return result(
                    FetchOutcome.TIMEOUT,
                    status=status,
                    bytes_read=size,
                    error=f"timed out after {request.polling.timeout:g}s while reading the body",
                )
            chunks.append(chunk)
        return result(
            FetchOutcome.OK,
            status=status,
            body=b"".join(chunks),
            bytes_read=size,
            content_type=response.headers.get("content-type"),
            max_age=max_age,
            **validators,
        )


def _sendable(url: str, credentials: FeedCredentials | None) -> str:
    """The URL with its "***" query values filled in, for the configured origin only."""
    if credentials is None or not credentials.query or origin(url) != credentials.origin:
        return url
    return restore_secrets(url, credentials.query)


def _auth_for(url: str, credentials: FeedCredentials | None) -> httpx.BasicAuth | None:
    """Basic auth for the configured origin; none for any other (no leak on redirect)."""
    if (
        credentials is None
        or credentials.username is None
        or credentials.password is None
        or origin(url) != credentials.origin
    ):
        return None
    return httpx.BasicAuth(credentials.username, credentials.password)


class _ForeignRedirect(Exception):
    def __init__(self, status: int, target: str) -> None:
        super().__init__(target)
        self.status = status
        self.target = target


def _refuse_foreign_redirect(response: httpx.Response) -> None:
    """Stop at a redirect to file:, ftp:, javascript: or any other non-http(s) URL."""
    if response.status_code in _REDIRECTS and "location" in response.headers:
        target = urljoin(str(response.request.url), response.headers["location"].strip())
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise _ForeignRedirect(response.status_code, target)


class _Deadline:
    """Cuts a fetch's connections when its time is up, so no read can outlive it.

    httpcore reports each new TCP connection to the request's trace hook; a
    duplicate of its socket is kept (it stays valid after TLS wraps the original),
    and a timer shuts it down at the deadline, which wakes a blocked read at once.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._finished = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._finished:
                return
            watched = sock.dup()
            self._sockets.append(watched)
            if self.expired:
                _shut(watched)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


class _ResultFactory(Protocol):
    """The closure Fetcher.fetch hands to _read: fills in URL, redirect and timing fields."""

    def __call__(self, outcome: FetchOutcome, **fields: Any) -> FetchResult: ...


_OUT_CHUNK = 65_536


class _UnsupportedEncoding(httpx.DecodingError):
    pass


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body, decompressed in pieces of at most _OUT_CHUNK bytes."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    # Each network read as it arrives: a fixed chunk size would make a slow server's
    # bytes pile up unseen, and the deadline is checked between pieces.
    raw = response.iter_raw()
    if encoding in ("", "identity"):
        yield from raw
        return
    if encoding in ("gzip", "x-gzip", "deflate"):
        yield from _inflate(raw, gzip=encoding != "deflate")
        return
    if encoding == "br":
        yield from _unbrotli(raw)
        return
    raise _UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")


class _TruncatedBody(httpx.DecodingError):
    """The connection ended in good order but the compressed stream did not.

    With a Content-Length that matches what was sent, httpx sees a complete
    response; only the decompressor knows the stream's end marker never came,
    and a cut feed parses as a shorter one with a half-written last entry.
    """

    def __init__(self, encoding: str) -> None:
        super().__init__(f"{encoding} body is truncated: the compressed stream does not end")


def _unbrotli(raw: Iterator[bytes]) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    try:
        for data in raw:
            yield decompressor.process(data, output_buffer_limit=_OUT_CHUNK)
            while not decompressor.can_accept_more_data():
                yield decompressor.process(b"", output_buffer_limit=_OUT_CHUNK)
        # The decoder can hold output back even when it would take more input, so the
        # last network read is not the end of the output: drain it until it says so.
        while not decompressor.is_finished():
            out = decompressor.process(b"", output_buffer_limit=_OUT_CHUNK)
            if not out:
                raise _TruncatedBody("brotli")
            yield out
    except brotli.error as e:
        raise httpx.DecodingError(f"brotli: {e}") from e


def _inflate(raw: Iterator[bytes], *, gzip: bool) -> Iterator[bytes]:
    # "deflate" is zlib-wrapped by the standard, raw deflate by some servers: try both.
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
    first = True
    try:
        for data in raw:
            if first and not gzip:
                try:
                    out = decompressor.decompress(data, _OUT_CHUNK)
                except zlib.error:
                    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                    out = decompressor.decompress(data, _OUT_CHUNK)
                first = False
            else:
                out = decompressor.decompress(data, _OUT_CHUNK)
            yield out
            while decompressor.unconsumed_tail:
                yield decompressor.decompress(decompressor.unconsumed_tail, _OUT_CHUNK)
        yield decompressor.flush()
    except zlib.error as e:
        raise httpx.DecodingError(f"bad compressed body: {e}") from e
    # zlib reports a stream cut short by no error at all: only `eof` tells.
    if not decompressor.eof:
        raise _TruncatedBody("gzip" if gzip else "deflate")


def _describe_transport_error(error: httpx.TransportError) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        lowered = text.lower()
        if (
            "name or service not known" in lowered
            or "nodename nor servname" in lowered
            or ("temporary failure in name resolution" in lowered)
        ):
            return f"DNS lookup failed: {text}"
        return f"connection failed: {text}"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"server broke the HTTP protocol: {text}"
    if isinstance(error, httpx.ReadError):
        return f"connection lost while reading: {text}"
    return f"network error: {text}"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now; accepts delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _max_age(value: str | None) -> float | None:
    if not value:
        return None
    if "no-store" in value.lower() or "no-cache" in value.lower():
        return 0.0
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match else None
