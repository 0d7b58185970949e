"""Resolve references to the Python standard library and trio without the network.

intersphinx would fetch ``objects.inv`` files at build time; the build must work
offline, so the few outside names the docs and docstrings use are listed here with
their documentation addresses. A reference to an outside name that is not in the
table stays unresolved, and the nitpicky build fails: add it here, with its real
address, when a docstring starts using it.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.nodes import Element, TextElement
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

PYTHON = "https://docs.python.org/3/"
TRIO = "https://trio.readthedocs.io/en/stable/"

#: Outside name -> address of its documentation.
TARGETS: dict[str, str] = {
    # ssl
    "ssl": PYTHON + "library/ssl.html#module-ssl",
    "ssl.SSLSession": PYTHON + "library/ssl.html#ssl.SSLSession",
    "ssl.SSLObject": PYTHON + "library/ssl.html#ssl.SSLObject",
    "ssl.SSLObject.session": PYTHON + "library/ssl.html#ssl.SSLSocket.session",
    "ssl.SSLSocket": PYTHON + "library/ssl.html#ssl.SSLSocket",
    "ssl.SSLSocket.session": PYTHON + "library/ssl.html#ssl.SSLSocket.session",
    "ssl.SSLSocket.session_reused": PYTHON + "library/ssl.html#ssl.SSLSocket.session_reused",
    "ssl.SSLContext": PYTHON + "library/ssl.html#ssl.SSLContext",
    "ssl.SSLContext.wrap_socket": PYTHON + "library/ssl.html#ssl.SSLContext.wrap_socket",
    "ssl.SSLContext.wrap_bio": PYTHON + "library/ssl.html#ssl.SSLContext.wrap_bio",
    "ssl.create_default_context": PYTHON + "library/ssl.html#ssl.create_default_context",
    # asyncio
    "asyncio": PYTHON + "library/asyncio.html",
    "asyncio.open_connection": PYTHON + "library/asyncio-stream.html#asyncio.open_connection",
    "asyncio.start_server": PYTHON + "library/asyncio-stream.html#asyncio.start_server",
    "asyncio.StreamReader": PYTHON + "library/asyncio-stream.html#asyncio.StreamReader",
    "asyncio.StreamWriter": PYTHON + "library/asyncio-stream.html#asyncio.StreamWriter",
    "asyncio.AbstractEventLoop": PYTHON
    + "library/asyncio-eventloop.html#asyncio.AbstractEventLoop",
    "asyncio.StreamWriter.get_extra_info": PYTHON
    + "library/asyncio-stream.html#asyncio.StreamWriter.get_extra_info",
    "asyncio.StreamWriter.close": PYTHON + "library/asyncio-stream.html#asyncio.StreamWriter.close",
    "asyncio.StreamWriter.wait_closed": PYTHON
    + "library/asyncio-stream.html#asyncio.StreamWriter.wait_closed",
    "asyncio.loop.create_connection": PYTHON
    + "library/asyncio-eventloop.html#asyncio.loop.create_connection",
    "asyncio.loop.start_tls": PYTHON + "library/asyncio-eventloop.html#asyncio.loop.start_tls",
    "asyncio.WriteTransport": PYTHON + "library/asyncio-protocol.html#asyncio.WriteTransport",
    "asyncio.Transport": PYTHON + "library/asyncio-protocol.html#asyncio.Transport",
    "asyncio.Protocol": PYTHON + "library/asyncio-protocol.html#asyncio.Protocol",
    "asyncio.CancelledError": PYTHON + "library/asyncio-exceptions.html#asyncio.CancelledError",
    "asyncio.TimeoutError": PYTHON + "library/asyncio-exceptions.html#asyncio.TimeoutError",
    "asyncio.Server": PYTHON + "library/asyncio-eventloop.html#asyncio.Server",
    "ssl.OP_NO_TICKET": PYTHON + "library/ssl.html#ssl.OP_NO_TICKET",
    "ssl.SSLError": PYTHON + "library/ssl.html#ssl.SSLError",
    "ssl.SSLCertVerificationError": PYTHON + "library/ssl.html#ssl.SSLCertVerificationError",
    "ssl.TLSVersion": PYTHON + "library/ssl.html#ssl.TLSVersion",
    "ssl.Purpose": PYTHON + "library/ssl.html#ssl.Purpose",
    "ssl.VerifyMode": PYTHON + "library/ssl.html#ssl.VerifyMode",
    # built-ins and typing
    "Exception": PYTHON + "library/exceptions.html#Exception",
    "TypeError": PYTHON + "library/exceptions.html#TypeError",
    "ValueError": PYTHON + "library/exceptions.html#ValueError",
    "OSError": PYTHON + "library/exceptions.html#OSError",
    "KeyError": PYTHON + "library/exceptions.html#KeyError",
    "ResourceWarning": PYTHON + "library/exceptions.html#ResourceWarning",
    "enum.IntFlag": PYTHON + "library/enum.html#enum.IntFlag",
    "enum.Enum": PYTHON + "library/enum.html#enum.Enum",
    "repr": PYTHON + "library/functions.html#repr",
    "time.time": PYTHON + "library/time.html#time.time",
    "time.monotonic": PYTHON + "library/time.html#time.monotonic",
    "secrets.token_bytes": PYTHON + "library/secrets.html#secrets.token_bytes",
    "sqlite3": PYTHON + "library/sqlite3.html",
    "warnings": PYTHON + "library/warnings.html",
    "UserWarning": PYTHON + "library/exceptions.html#UserWarning",
    "RuntimeError": PYTHON + "library/exceptions.html#RuntimeError",
    "collections.abc.Sequence": PYTHON + "library/collections.abc.html#collections.abc.Sequence",
    "collections.abc.Iterable": PYTHON + "library/collections.abc.html#collections.abc.Iterable",
    "collections.abc.Mapping": PYTHON + "library/collections.abc.html#collections.abc.Mapping",
    "memoryview": PYTHON + "library/stdtypes.html#memoryview",
    "typing.Protocol": PYTHON + "library/typing.html#typing.Protocol",
    "collections.abc.Hashable": PYTHON + "library/collections.abc.html#collections.abc.Hashable",
    "collections.abc.Callable": PYTHON + "library/collections.abc.html#collections.abc.Callable",
    "collections.abc.Awaitable": PYTHON
    + "library/collections.abc.html#collections.abc.Awaitable",
    "socket.socket": PYTHON + "library/socket.html#socket.socket",
    "pathlib.Path": PYTHON + "library/pathlib.html#pathlib.Path",
    "os.PathLike": PYTHON + "library/os.html#os.PathLike",
    "tracemalloc": PYTHON + "library/tracemalloc.html#module-tracemalloc",
    "bool": PYTHON + "library/functions.html#bool",
    "bytes": PYTHON + "library/stdtypes.html#bytes",
    "bytearray": PYTHON + "library/stdtypes.html#bytearray",
    "float": PYTHON + "library/functions.html#float",
    "int": PYTHON + "library/functions.html#int",
    "str": PYTHON + "library/stdtypes.html#str",
    "list": PYTHON + "library/stdtypes.html#list",
    "dict": PYTHON + "library/stdtypes.html#dict",
    "None": PYTHON + "library/constants.html#None",
    "object": PYTHON + "library/functions.html#object",
    # HTTP clients
    "httpx": "https://www.python-httpx.org/",
    "httpx.AsyncClient": "https://www.python-httpx.org/api/#asyncclient",
    "httpx.Client": "https://www.python-httpx.org/api/#client",
    "httpx.AsyncHTTPTransport": "https://www.python-httpx.org/advanced/transports/",
    "httpx.HTTPTransport": "https://www.python-httpx.org/advanced/transports/",
    "httpx.AsyncBaseTransport": "https://www.python-httpx.org/advanced/transports/",
    "httpx.BaseTransport": "https://www.python-httpx.org/advanced/transports/",
    "httpx.Request": "https://www.python-httpx.org/api/#request",
    "httpx.Response": "https://www.python-httpx.org/api/#response",
    "httpx.Limits": "https://www.python-httpx.org/advanced/resource-limits/",
    "aiohttp": "https://docs.aiohttp.org/en/stable/",
    "aiohttp.ClientSession": "https://docs.aiohttp.org/en/stable/client_reference.html"
    "#aiohttp.ClientSession",
    "aiohttp.TCPConnector": "https://docs.aiohttp.org/en/stable/client_reference.html"
    "#aiohttp.TCPConnector",
    "requests": "https://requests.readthedocs.io/en/latest/",
    "requests.Session": "https://requests.readthedocs.io/en/latest/api/#requests.Session",
    "requests.adapters.HTTPAdapter": "https://requests.readthedocs.io/en/latest/api/"
    "#requests.adapters.HTTPAdapter",
    "requests.models.PreparedRequest": "https://requests.readthedocs.io/en/latest/api/"
    "#requests.PreparedRequest",
    "requests.PreparedRequest": "https://requests.readthedocs.io/en/latest/api/"
    "#requests.PreparedRequest",
    # redis-py
    "redis.from_url": "https://redis.readthedocs.io/en/stable/connections.html#redis.Redis.from_url",
    "redis.Redis": "https://redis.readthedocs.io/en/stable/connections.html#redis.Redis",
    # trio
    "trio": TRIO,
    "trio.SSLStream": TRIO + "reference-io.html#trio.SSLStream",
    "trio.SSLStream.aclose": TRIO + "reference-io.html#trio.SSLStream.aclose",
    "trio.SSLStream.receive_some": TRIO + "reference-io.html#trio.SSLStream.receive_some",
    "trio.SSLStream.send_all": TRIO + "reference-io.html#trio.SSLStream.send_all",
    "trio.SSLStream.unwrap": TRIO + "reference-io.html#trio.SSLStream.unwrap",
    "trio.SSLStream.do_handshake": TRIO + "reference-io.html#trio.SSLStream.do_handshake",
    "trio.SSLStream.transport_stream": TRIO + "reference-io.html#trio.SSLStream.transport_stream",
    "trio.SSLStream.wait_send_all_might_not_block": TRIO
    + "reference-io.html#trio.SSLStream.wait_send_all_might_not_block",
    "trio.BrokenResourceError": TRIO + "reference-io.html#trio.BrokenResourceError",
    "trio.ClosedResourceError": TRIO + "reference-io.html#trio.ClosedResourceError",
    "trio.Cancelled": TRIO + "reference-core.html#trio.Cancelled",
    "trio.SSLListener": TRIO + "reference-io.html#trio.SSLListener",
    "trio.SocketStream": TRIO + "reference-io.html#trio.SocketStream",
    "trio.open_tcp_stream": TRIO + "reference-io.html#trio.open_tcp_stream",
    "trio.open_ssl_over_tcp_stream": TRIO + "reference-io.html#trio.open_ssl_over_tcp_stream",
    "trio.serve_tcp": TRIO + "reference-io.html#trio.serve_tcp",
    "trio.serve_ssl_over_tcp": TRIO + "reference-io.html#trio.serve_ssl_over_tcp",
    "trio.Nursery": TRIO + "reference-core.html#trio.Nursery",
    "trio.abc.Stream": TRIO + "reference-io.html#trio.abc.Stream",
    "trio.abc.HalfCloseableStream": TRIO + "reference-io.html#trio.abc.HalfCloseableStream",
    "trio.TASK_STATUS_IGNORED": TRIO + "reference-core.html#trio.TASK_STATUS_IGNORED",
    "trio.TaskStatus": TRIO + "reference-core.html#trio.TaskStatus",
}

#: Other spellings that Sphinx produces for the same names.
ALIASES = {
    "_ssl._SSLSocket": "ssl.SSLSocket",
    "_ssl.SSLSession": "ssl.SSLSession",
    "ssl.SSLSession | None": "ssl.SSLSession",
    "Hashable": "collections.abc.Hashable",
    "Callable": "collections.abc.Callable",
    "Awaitable": "collections.abc.Awaitable",
    "Sequence": "collections.abc.Sequence",
    "Iterable": "collections.abc.Iterable",
    "Mapping": "collections.abc.Mapping",
    "trio._ssl.SSLStream": "trio.SSLStream",
    "trio._highlevel_ssl_helpers": "trio",
    "trio._core._run.Nursery": "trio.Nursery",
    "NoneType": "None",
    "asyncio.events.AbstractEventLoop": "asyncio.AbstractEventLoop",
    "asyncio.base_events.Server": "asyncio.Server",
    "asyncio.streams.StreamReader": "asyncio.StreamReader",
    "asyncio.streams.StreamWriter": "asyncio.StreamWriter",
    "asyncio.transports.WriteTransport": "asyncio.WriteTransport",
    "asyncio.transports.Transport": "asyncio.Transport",
}


#: Members of these documented classes are found at PAGE#FULL.NAME, as both
#: Python's and trio's docs anchor them.
MEMBER_PAGES: dict[str, str] = {
    "ssl.SSLSocket.": PYTHON + "library/ssl.html",
    "ssl.SSLObject.": PYTHON + "library/ssl.html",
    "ssl.SSLContext.": PYTHON + "library/ssl.html",
    "ssl.SSLSession.": PYTHON + "library/ssl.html",
    "asyncio.StreamReader.": PYTHON + "library/asyncio-stream.html",
    "asyncio.StreamWriter.": PYTHON + "library/asyncio-stream.html",
    "asyncio.loop.": PYTHON + "library/asyncio-eventloop.html",
    "asyncio.Server.": PYTHON + "library/asyncio-eventloop.html",
    "asyncio.BaseTransport.": PYTHON + "library/asyncio-protocol.html",
    "asyncio.WriteTransport.": PYTHON + "library/asyncio-protocol.html",
    "trio.SSLStream.": TRIO + "reference-io.html",
    "trio.SocketStream.": TRIO + "reference-io.html",
    "trio.abc.": TRIO + "reference-io.html",
    "trio.Nursery.": TRIO + "reference-core.html",
}


def _uri(target: str) -> str | None:
    uri = TARGETS.get(target)
    if uri is not None:
        return uri
    for prefix, page in MEMBER_PAGES.items():
        if target.startswith(prefix) and target != prefix:
            return f"{page}#{target}"
    return None


def _resolve(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: TextElement
) -> Element | None:
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", ""))
    target = ALIASES.get(target, target)
    uri = _uri(target)
    if uri is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=uri, reftitle=target)
    reference.append(contnode)
    return reference


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the resolver (a ``missing-reference`` handler, run last)."""
    app.connect("missing-reference", _resolve, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
