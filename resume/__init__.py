"""TLS session resumption for async Python, with OpenSSL's reference-counting rules.

The public surface is re-exported here; the implementation lives in private
modules (``resume._handle``, ``resume._cache``, ...). The adapters are
:mod:`resume.trio` and :mod:`resume.asyncio`.
"""

from ._cache import CacheMode as CacheMode
from ._cache import CacheStatistics as CacheStatistics
from ._cache import SessionCache as SessionCache
from ._defaults import default_cache as default_cache
from ._defaults import default_ssl_context as default_ssl_context
from ._errors import DoubleFreeError as DoubleFreeError
from ._errors import ResumeError as ResumeError
from ._errors import SessionDecodeError as SessionDecodeError
from ._errors import SessionError as SessionError
from ._errors import StoreError as StoreError
from ._errors import UnsupportedError as UnsupportedError
from ._errors import UseAfterFreeError as UseAfterFreeError
from ._handle import SessionHandle as SessionHandle
from ._handle import SessionPayload as SessionPayload
from ._handle import session_free as session_free
from ._key import SessionKey as SessionKey
from ._probe import FleetMatrix as FleetMatrix
from ._probe import ProbeError as ProbeError
from ._probe import ProbeResult as ProbeResult
from ._probe import ResumptionTally as ResumptionTally
from ._probe import VersionProbe as VersionProbe
from ._probe_io import probe as probe
from ._server import ServerStatistics as ServerStatistics
from ._store import StoreWarning as StoreWarning
from ._version import __version__ as __version__

__all__ = [
    "CacheMode",
    "CacheStatistics",
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
    "UseAfterFreeError",
    "VersionProbe",
    "__version__",
    "default_cache",
    "default_ssl_context",
    "probe",
    "session_free",
]
