"""The ``endpoint`` and ``https_proxy`` settings: a base URL checked once with urllib.parse.

The contract (Request) says what an endpoint may hold: https://, or http:// to
loopback only unless the operator opts in; a full ingest URL pasted in is taken
as its base, with a warning, so the path is never doubled; control characters,
spaces, a fragment, a query or credentials are configuration errors.
"""

from __future__ import annotations

from seestack_systemd.contract import INGEST_PATH
from seestack_systemd.errors import ConfigError


class Endpoint:
    """A checked base URL: scheme, lowercased host, port, base path ('' or '/a/b')."""

    __slots__ = ("scheme", "host", "port", "path", "warning")

    def __init__(self, scheme: str, host: str, port: int, path: str, warning: str = "") -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.path = path  # base path without trailing slash, '' for none
        self.warning = warning  # what the operator should change, '' when nothing

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost", "::1"):
            return True
        parts = self.host.split(".")
        if len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
            return parts[0] == "127" and all(int(p) < 256 for p in parts)
        if ":" not in self.host:
            return False  # a name: only "localhost" is loopback by definition
        import ipaddress  # only for IPv6 literals such as 0:0::1, the rest is checked above

        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def authority(self) -> str:
        """host:port as it goes into a URL or a CONNECT line (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ingest_url(self) -> str:
        """Where heartbeats are POSTed."""
        return f"{self.scheme}://{self.authority}{self.path}{INGEST_PATH}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def parse_endpoint(url: str, allow_insecure_http: bool = False, setting: str = "endpoint") -> Endpoint:
    """Split and check a URL for ``setting``: https://, or http:// to loopback (or when
    allowed). Raises ConfigError naming the setting and how to fix it."""
    text = url.strip(" \t")
    if "@" in text:
        # Said without echoing the URL: what stands before '@' is a secret.
        hint = "the key goes in api_key_file" if setting == "endpoint" else "proxy credentials are not supported"
        raise ConfigError(f"{setting}: the URL holds credentials ('user:secret@'): remove them; {hint}")
    bad = [c for c in text if c.isspace() or ord(c) < 32 or ord(c) == 127]
    if bad:
        raise ConfigError(f"{setting} {text!r} holds {'a space' if bad[0] == ' ' else 'a control character'}"
                          f" ({bad[0]!r}): write the URL on one line with no spaces")
    from urllib.parse import urlsplit  # here: ``start`` loads the config, never a URL

    example = "https://HOST[/PATH]" if setting == "endpoint" else "http://HOST:PORT"
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
        raise ConfigError(f"{setting} {text!r} is not a URL: use {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not text[len(scheme):].startswith("://"):
        raise ConfigError(f"{setting} {text!r} is not a URL: use {example}")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ConfigError(f"{setting} {text!r} has a query or fragment ('?' or '#'): use {example} alone")
    if not parts.hostname:
        raise ConfigError(f"{setting} {text!r} has no host name")
    try:
        port = parts.port
        if port == 0:
            raise ValueError
    except ValueError:
        port_text = parts.netloc.rpartition("]")[2].partition(":")[2]
        raise ConfigError(f"{setting} {text!r} has a bad port {port_text!r}") from None
    port = port or (443 if scheme == "https" else 80)
    base, warning = parts.path.rstrip("/"), ""
    if setting == "endpoint" and (base + "/").endswith(INGEST_PATH + "/"):
        base = base[: -len(INGEST_PATH)].rstrip("/")
        warning = (f"endpoint {text!r} is the full ingest URL: using {scheme}://{parts.netloc}{base} as its base;"
                   f" set endpoint to that to silence this warning")
    endpoint = Endpoint(scheme, parts.hostname.lower(), port, base, warning)
    if scheme == "http" and not endpoint.is_loopback and not allow_insecure_http:
        raise ConfigError(
            f"{setting} {text!r} uses plain http:// to a non-loopback host, which would send the API key"
            " unencrypted: use https://, or set allow_insecure_http = yes to accept the risk"
        )
    return endpoint
