"""TLS session resumption for async Python, with OpenSSL's reference-counting rules.

The public surface is re-exported here; the implementation lives in private
modules (``resume._core.handle``, ``resume._core.cache``, ...). The adapters are
:mod:`resume.trio` and :mod:`resume.asyncio`; the HTTP client integrations are
:mod:`resume.httpx`, :mod:`resume.aiohttp` and :mod:`resume.requests` (imported
only when you import them). :class:`ClientConnection` and :func:`make_key` are
the extension point for another integration.
"""

from ._adapters.server_settings import ServerStatistics as ServerStatistics
from ._core.cache import CacheMode as CacheMode
from ._core.cache import CacheStatistics as CacheStatistics
from ._core.cache import SessionCache as SessionCache
from ._core.defaults import create_client_context as create_client_context
from ._core.defaults import default_cache as default_cache
from ._core.defaults import default_ssl_context as default_ssl_context
from ._core.errors import DoubleFreeError as DoubleFreeError
from ._core.errors import ResumeError as ResumeError
from ._core.errors import SessionDecodeError as SessionDecodeError
from ._core.errors import SessionError as SessionError
from ._core.errors import StoreError as StoreError
from ._core.errors import UnsupportedError as UnsupportedError
from ._core.errors import UntrackedContextWarning as UntrackedContextWarning
from ._core.errors import UseAfterFreeError as UseAfterFreeError
from ._core.handle import SessionHandle as SessionHandle
from ._core.handle import SessionPayload as SessionPayload
from ._core.handle import session_free as session_free
from ._core.key import SessionKey as SessionKey
from ._core.key import make_key as make_key
from ._core.policy import ClientConnection as ClientConnection
from ._probe.model import FleetMatrix as FleetMatrix
from ._probe.model import ProbeError as ProbeError
from ._probe.model import ProbeResult as ProbeResult
from ._probe.model import ResumptionTally as ResumptionTally
from ._probe.model import VersionProbe as VersionProbe
from ._probe.run import probe as probe
from ._stores.base import StoreWarning as StoreWarning
from ._version import __version__ as __version__

__all__ = [
    "CacheMode",
    "CacheStatistics",
    "ClientConnection",
    "DoubleFreeError",
    "FleetMatrix",
    "ProbeError",
    "ProbeResult",
    "ResumeError",
    "ResumptionTally",
    "ServerStatistics",
    "SessionCache",
    "SessionDecodeError",
    "SessionError",
    "SessionHandle",
    "SessionKey",
    "SessionPayload",
    "StoreError",
    "StoreWarning",
    "UnsupportedError",
    "UntrackedContextWarning",
    "UseAfterFreeError",
    "VersionProbe",
    "__version__",
    "create_client_context",
    "default_cache",
    "default_ssl_context",
    "make_key",
    "probe",
    "session_free",
]

# The sans-I/O client policy and the key, public for integrations (see
# docs/howto/integrations.rst); they live in resume._core.
ClientConnection.__module__ = "resume"
make_key.__module__ = "resume"
