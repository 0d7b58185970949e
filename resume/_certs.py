# Throwaway certificates for ``resume demo``, the examples and quick experiments.
#
# trustme makes a private CA and a certificate for localhost/127.0.0.1 in memory
# at run time (nothing ships in the package, nothing is written unless asked),
# so the demo works from a plain ``pip install``. Never use these for anything
# that matters: the CA's key lives in this process only and dies with it.
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final, final

import trustme

from ._adapters.server_settings import pin_tls_version

__all__ = ["DemoCertificates"]

#: The names the server certificate is valid for.
DEMO_NAMES: Final = ("localhost", "127.0.0.1", "::1")


@final
class DemoCertificates:
    """A throwaway CA and a server certificate for localhost (made with trustme).

    Args:
        key_type: ``"ecdsa"`` (fast, the default) or ``"rsa"`` (RSA-2048).
    """

    def __init__(self, *, key_type: str = "ecdsa") -> None:
        types = {"ecdsa": trustme.KeyType.ECDSA, "rsa": trustme.KeyType.RSA}
        if key_type not in types:
            raise ValueError(f"key_type must be 'ecdsa' or 'rsa', got {key_type!r}")
        self.ca = trustme.CA(key_type=types[key_type])
        self.server_cert = self.ca.issue_cert(*DEMO_NAMES, key_type=types[key_type])

    def server_context(self, tls: str | None = None) -> ssl.SSLContext:
        """A server context with the certificate, pinned to *tls* ("1.2"/"1.3") if given."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(context)
        return pin_tls_version(context, tls) if tls else context

    def client_context(self, tls: str | None = None) -> ssl.SSLContext:
        """A client context that trusts the throwaway CA, pinned to *tls* if given."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return pin_tls_version(context, tls) if tls else context

    def write(self, directory: str | Path) -> tuple[Path, Path, Path]:
        """Write ``ca.pem``, ``server.pem`` and ``server.key`` (mode 0600) into *directory*.

        Returns:
            the three paths, in that order.
        """
        where = Path(directory)
        ca, cert, key = where / "ca.pem", where / "server.pem", where / "server.key"
        self.ca.cert_pem.write_to_path(str(ca))
        chain = b"".join(pem.bytes() for pem in self.server_cert.cert_chain_pems)
        cert.write_bytes(chain)
        key.touch(mode=0o600)
        key.chmod(0o600)
        self.server_cert.private_key_pem.write_to_path(str(key))
        return ca, cert, key
