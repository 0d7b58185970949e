# The facts that several rooms need, each written once: the TLS versions resume
# speaks of, the longest a session may live, and what a TCP port is. The cache,
# the stores, the servers, the clients and the command line all read them here.
from __future__ import annotations

import ssl
from typing import Final

__all__ = [
    "MAX_LIFETIME",
    "PORT_MAX",
    "TLS_VERSIONS",
    "TLS_VERSION_NAMES",
    "check_port",
    "pin_tls_version",
]

#: RFC 8446, section 4.6.1: a ticket lifetime "MUST NOT" exceed 604800 s (7 days).
#: No session lives longer in a cache, a store or a server's tickets.
MAX_LIFETIME: Final = 7 * 24 * 3600

#: The TLS versions the command line, the demo and the tests speak of.
TLS_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

#: What ``SSLObject.version()`` reports for each of them.
TLS_VERSION_NAMES: Final = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}

#: The largest TCP port number.
PORT_MAX: Final = 65535


def pin_tls_version(context: ssl.SSLContext, version: str) -> ssl.SSLContext:
    """Allow only TLS *version* (``"1.2"`` or ``"1.3"``) on *context*; return it.

    Mirrors ``SSL_CTX_set_min_proto_version()`` and ``SSL_CTX_set_max_proto_version()``.

    Raises:
        ValueError: an unknown version.
    """
    if version not in TLS_VERSIONS:
        raise ValueError(f"TLS version must be '1.2' or '1.3', got {version!r}")
    context.minimum_version = TLS_VERSIONS[version]
    context.maximum_version = TLS_VERSIONS[version]
    return context


def check_port(port: object, *, allow_zero: bool = False) -> int:
    """Check that *port* is a TCP port number; return it.

    A server may listen on port 0 (*allow_zero*: the kernel picks a free port);
    a client always connects to 1-65535.

    Raises:
        TypeError: not an int (a bool is not a port either).
        ValueError: out of range.
    """
    if type(port) is not int:
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, got {type(port).__name__}")
        port = int(port)
    low = 0 if allow_zero else 1
    if not low <= port <= PORT_MAX:
        raise ValueError(f"port must be in {low}-{PORT_MAX}, got {port}")
    return port
