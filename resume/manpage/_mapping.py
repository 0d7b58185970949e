# The one table from OpenSSL's C functions to the ``resume`` objects that mirror them.
#
# Everything that links a C function to Python (the generated man pages, the
# conformance matrix, docstrings' "mirrors" notes) reads this table and nothing else.
# A target that does not exist yet in ``resume`` (a method another change is still
# adding) is shown as text rather than linked, so a missing method can never break a
# nitpicky docs build: ``python_equivalent`` checks the target against the package.
from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["PYTHON_EQUIVALENTS", "python_equivalent", "python_target_exists"]

#: C function -> dotted path of its Python equivalent in ``resume``.
PYTHON_EQUIVALENTS: Mapping[str, str] = MappingProxyType(
    {
        "SSL_SESSION_new": "resume.SessionHandle.new",
        "SSL_SESSION_dup": "resume.SessionHandle.dup",
        "SSL_SESSION_up_ref": "resume.SessionHandle.up_ref",
        "SSL_SESSION_free": "resume.session_free",
        "SSL_SESSION_is_resumable": "resume.SessionHandle.is_resumable",
        "SSL_get_session": "resume.SessionCache.get0",
        "SSL_get0_session": "resume.SessionCache.get0",
        "SSL_get1_session": "resume.SessionCache.get1",
        "SSL_CTX_set_session_cache_mode": "resume.SessionCache.set_mode",
        "SSL_CTX_get_session_cache_mode": "resume.SessionCache.mode",
        "SSL_CTX_flush_sessions": "resume.SessionCache.flush",
        "SSL_CTX_add_session": "resume.SessionCache.add",
        "SSL_CTX_remove_session": "resume.SessionCache.remove",
        "SSL_CTX_sess_number": "resume.SessionCache.statistics",
        "d2i_SSL_SESSION": "resume.SessionHandle.from_der",
        "i2d_SSL_SESSION": "resume.SessionHandle.to_der",
        "SSL_write_early_data": "resume.trio.open_tls_stream",
        "SSL_get_early_data_status": "resume.trio.ResumingSSLStream.early_data_accepted",
        "SSL_read_early_data": "resume.trio.TLSServerStream.receive_some",
        "SSL_CTX_set_max_early_data": "resume.trio.serve_tls",
        "SSL_CTX_set_recv_max_early_data": "resume.trio.serve_tls",
        "SSL_CTX_set_allow_early_data_cb": "resume.replay.ReplayGuard.first_use",
    }
)


def python_target_exists(target: str) -> bool:
    """True when the dotted path *target* (``resume.SessionHandle.dup``) exists."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return False
        return True
    return False


def python_equivalent(c_function: str) -> str | None:
    """The dotted path of the Python equivalent of *c_function*, or None."""
    return PYTHON_EQUIVALENTS.get(c_function)
