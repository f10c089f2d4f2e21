"""The guard in front of every route of the page: who may ask, and from which page.

- With a token, nothing answers without it (401, nothing else said); wrong tokens are throttled
  per address (`Throttle`), so guessing a token takes lifetimes rather than hours.
- Without one (127.0.0.1 only), only loopback Host names are served, so a web page elsewhere
  cannot reach the server by renaming itself to 127.0.0.1 (DNS rebinding).
- Cross-site requests are refused (403), in every mode: a request that changes something (POST)
  must come from the page itself, said by the browser (Sec-Fetch-Site: same-origin, or an Origin
  that is this Host) or by the page's own script (the per-page token in X-Page-Token), or carry
  the token as a header no other site's page can add; and another site's page gets no answer
  to anything but a plain link to the page (Fetch Metadata's resource isolation policy).
- Security headers on every answer, and no CORS headers ever, so pages of other origins cannot
  read an answer.
"""
from __future__ import annotations

import collections
import hmac
import ipaddress
import math
import time
import urllib.parse

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PAGE_TOKEN_HEADER = b"x-page-token"


class Throttle:
    """Wrong (not missing) tokens per client address (an IPv6 /64 counts as one): `free` of them cost nothing,
    then each locks the address out for twice as long as the one before (1 s, 2 s, ... `longest`).
    While locked out every request from there gets 429 before its token is looked at, so a guess
    then tells nothing; the right token clears the record, `forget` seconds of quiet too."""

    def __init__(self, free: int = 5, first: float = 1.0, longest: float = 60.0, forget: float = 600.0,
                 keep: int = 1024, clock=time.monotonic):
        self.free, self.first, self.longest, self.forget = free, first, longest, forget
        self.keep, self.clock = keep, clock
        self.records: collections.OrderedDict[str, tuple[int, float, float]] = collections.OrderedDict()
        self.refused = 0   # wrong tokens and locked-out requests, for the summary

    @staticmethod
    def key(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def wait_seconds(self, address: str) -> float:
        """How long this address is still locked out (0: it may try)."""
        record = self.records.get(self.key(address))
        if record is None:
            return 0.0
        failures, last, until = record
        if self.clock() - last > self.forget:
            del self.records[self.key(address)]
            return 0.0
        return max(0.0, until - self.clock())

    def failed(self, address: str) -> None:
        key, now = self.key(address), self.clock()
        failures = self.records.pop(key, (0, now, now))[0] + 1
        lockout = 0.0 if failures <= self.free else min(self.longest, self.first * 2 ** (failures - self.free - 1))
        self.records[key] = (failures, now, now + lockout)
        while len(self.records) > self.keep:
            self.records.popitem(last=False)

    def cleared(self, address: str) -> None:
        self.records.pop(self.key(address), None)


def host_name(headers: dict) -> str:
    """The Host header's name, without the port, lower case ([::1]:8000 -> ::1)."""
    name = headers.get(b"host", b"").decode("latin-1").lower()
    return name[1:name.index("]")] if name.startswith("[") and "]" in name else name.split(":")[0]


def from_this_page(headers: dict, page_token: bytes, bearer: bool) -> bool:
    """A request that changes something comes from the page itself (or from a program holding
    the token as a header): never from another site's form or script."""
    site = headers.get(b"sec-fetch-site")
    if site is not None:  # every current browser says where a request comes from
        return site == b"same-origin"
    origin = headers.get(b"origin")
    if origin is not None:  # older browsers: the Origin of any POST
        return origin.lower().partition(b"://")[2] == headers.get(b"host", b"").lower()
    given = headers.get(PAGE_TOKEN_HEADER)
    return bearer or (given is not None and hmac.compare_digest(given, page_token))


def cross_site(headers: dict) -> bool:
    """A request another site's page made, other than a plain link to the page."""
    site = headers.get(b"sec-fetch-site")
    return site in (b"cross-site", b"same-site") and headers.get(b"sec-fetch-mode") != b"navigate"


async def answer_plain(send, status: int, text: str, headers: list | tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": text.encode()})


class Guard:
    """ASGI middleware: the token (or loopback Host names), then same-origin, then the route."""

    def __init__(self, app, token: str | None, host: str, page_token: str, throttle: Throttle | None = None):
        self.app, self.host = app, host.lower()
        self.token = None if token is None else token.encode()
        self.page_token, self.throttle = page_token.encode(), throttle or Throttle()

    def given_token(self, scope, headers: dict) -> tuple[bytes, bool]:
        """(the token the request carries, whether in the Authorization header)."""
        given = headers.get(b"authorization", b"")
        if given[:7].lower() == b"bearer " and given[7:].strip():
            return given[7:].strip(), True
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("token") or [""])[0].encode(), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers, bearer = dict(scope.get("headers") or []), False
        if self.token is None:
            if host_name(headers) not in LOOPBACK_NAMES and host_name(headers) != self.host:
                return await answer_plain(send, 401, "unauthorized\n", [(b"www-authenticate", b"Bearer")])
        else:
            address = (scope.get("client") or ("?",))[0]
            wait = self.throttle.wait_seconds(address)
            if wait > 0:
                self.throttle.refused += 1
                return await answer_plain(send, 429, f"too many wrong tokens: try again in {math.ceil(wait)} s\n",
                                          [(b"retry-after", str(math.ceil(wait)).encode())])
            given, bearer = self.given_token(scope, headers)
            if not hmac.compare_digest(given, self.token):
                if given:  # a guess (no token at all guesses nothing: a link opened without it)
                    self.throttle.failed(address)
                self.throttle.refused += 1
                return await answer_plain(send, 401, "unauthorized\n", [(b"www-authenticate", b"Bearer")])
            self.throttle.cleared(address)
        if cross_site(headers) or (scope["method"] not in SAFE_METHODS
                                   and not from_this_page(headers, self.page_token, bearer)):
            return await answer_plain(send, 403, "cross-site request refused: send it from the monitor's own page\n")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
