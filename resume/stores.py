"""Session stores: where serialized sessions live outside a process.

A :class:`SessionStore` keeps sessions exported with
:meth:`resume.SessionHandle.to_der` under a cache key, with an expiry.
:class:`MemoryStore` is the default; :class:`SQLiteStore` persists in one file on
one host; :class:`RedisStore` shares sessions between processes and hosts.
:func:`attach_store` makes a :class:`resume.SessionCache` sit on a store
(fetches before a connection and writes behind, both off the event loop).

Keys are stored as salted HMAC-SHA256 hashes; with a 32-byte ``key=`` (or
``key_file=``, see :func:`load_key`) the sessions are encrypted with AES-256-GCM.
An entry that cannot be read is dropped with a :class:`resume.StoreWarning`.
"""

from ._stores.base import SessionStore as SessionStore
from ._stores.base import StoredSession as StoredSession
from ._stores.base import StoreWarning as StoreWarning
from ._stores.base import key_bytes as key_bytes
from ._stores.base import load_key as load_key
from ._stores.link import StoreLink as StoreLink
from ._stores.link import attach_store as attach_store
from ._stores.link import context_label_digest as context_label_digest
from ._stores.memory import MemoryStore as MemoryStore
from ._stores.redis import RedisStore as RedisStore
from ._stores.sqlite import SQLiteStore as SQLiteStore

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "SessionStore",
    "StoreLink",
    "StoreWarning",
    "StoredSession",
    "attach_store",
    "context_label_digest",
    "key_bytes",
    "load_key",
]
