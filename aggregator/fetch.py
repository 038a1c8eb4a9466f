"""HTTP only: one conditional GET per feed -> FetchResult. The only httpx importer.

Every failure is returned as data (outcome + error text) so a poll never
raises because of one feed. Redirects are followed here rather than by httpx
so that each hop's scheme is checked and permanent moves can be told apart.
"""

from __future__ import annotations

import email.utils
import re
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import brotli
import httpx

from aggregator.models import FetchOutcome, FetchRequest, FetchResult

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
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            trust_env=False,
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
        url = request.url
        permanent_url: str | None = None
        only_permanent_so_far = True

        def result(outcome: FetchOutcome, **fields: Any) -> FetchResult:
            return FetchResult(
                requested_url=request.url,
                final_url=url,
                outcome=outcome,
                permanent_url=permanent_url,
                elapsed=time.monotonic() - started,
                **fields,
            )

        headers = {"User-Agent": request.polling.user_agent}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        timeout = httpx.Timeout(request.polling.timeout)

        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with self._client.stream("GET", url, headers=headers, timeout=timeout) as response:
                    status = response.status_code
                    if status in _REDIRECTS and "location" in response.headers:
                        target = urljoin(url, response.headers["location"].strip())
                        scheme = urlsplit(target).scheme.lower()
                        if scheme not in ("http", "https"):
                            return result(
                                FetchOutcome.REFUSED,
                                status=status,
                                error=f"refused redirect to a non-http(s) URL: {target[:200]}",
                            )
                        if only_permanent_so_far and status in _PERMANENT:
                            permanent_url = target
                        else:
                            only_permanent_so_far = False
                        url = target
                        continue
                    return self._read(response, request, deadline, result)
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
            FetchOutcome.REFUSED, error=f"more than {MAX_REDIRECTS} redirects, last to {url[:200]}"
        )

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


class _ResultFactory(Protocol):
    """The closure Fetcher.fetch hands to _read: fills in URL, redirect and timing fields."""

    def __call__(self, outcome: FetchOutcome, **fields: Any) -> FetchResult: ...


_RAW_CHUNK = 16_384
_OUT_CHUNK = 65_536


class _UnsupportedEncoding(httpx.DecodingError):
    pass


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body, decompressed in pieces of at most _OUT_CHUNK bytes."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    raw = response.iter_raw(_RAW_CHUNK)
    if encoding in ("", "identity"):
        yield from raw
        return
    if encoding in ("gzip", "x-gzip", "deflate"):
        yield from _inflate(raw, gzip=encoding != "deflate")
        return
    if encoding == "br":
        decompressor = brotli.Decompressor()
        try:
            for data in raw:
                yield decompressor.process(data, output_buffer_limit=_OUT_CHUNK)
                while not decompressor.can_accept_more_data():
                    yield decompressor.process(b"", output_buffer_limit=_OUT_CHUNK)
        except brotli.error as e:
            raise httpx.DecodingError(f"brotli: {e}") from e
        return
    raise _UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")


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
