# Theory of operation: files that hold secrets, opened safely
# ===========================================================
#
# Session stores and ticket-key sources keep secrets in files (a SQLite database
# of sessions, a store key, a ticket-key ring). Whoever can write one of those
# files can make this process resume a session with a server it does not trust;
# whoever can read one (with its key) can decrypt the recorded traffic of the
# sessions in it. So every such file is opened the same way:
#
# 1. Never through a symbolic link: ``O_NOFOLLOW`` on the open, so a link
#    planted at the path (``sessions.db -> /etc/important.conf``) is refused
#    (ELOOP) instead of followed, and the file it points to is left untouched.
# 2. Checked on the open descriptor (``fstat``), before anything else is done
#    to it: a regular file, owned by this process's effective user, not
#    writable by group or others (a key file: not readable either). A failed
#    check raises StoreError with one line naming the path and what is wrong;
#    nothing is chmod-ed, nothing is read back as trusted.
# 3. Created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600. A key file is
#    written to a temporary name first and then hard-linked into place
#    (``link`` fails if the name exists and never follows a link there), so
#    processes that start together agree on one key and nobody ever reads a
#    half-written key.
#
# What remains: a directory that others may write lets them rename our files
# away between two opens. The SQLite store therefore refuses a directory that
# is writable by others and not sticky, and the documentation says to keep
# stores in a directory only their user can write.
#
# redact_url() is here too: every URL that is printed, logged, raised or
# repr'd goes through it, so a Redis password never leaves the process.
from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .._core.errors import StoreError

__all__ = [
    "check_directory",
    "check_file",
    "load_or_create_key",
    "open_checked",
    "read_private",
    "redact_url",
    "scrub",
]

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
#: Query parameters of a Redis URL that hold secrets.
_SECRET_PARAMS: Final = frozenset({"password", "pass", "pw", "auth", "token"})


def check_file(st: os.stat_result, path: Path, what: str, *, private: bool) -> None:
    """Refuse a file that is not ours alone; *private*: not even readable by others."""
    where = f"{what} {str(path)!r}"
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{where} is not a regular file")
    uid = os.geteuid()
    if st.st_uid != uid:
        raise StoreError(
            f"{where} is owned by uid {st.st_uid}, not by this user (uid {uid}); "
            f"refusing to use it"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise StoreError(
            f"{where} is writable by group or others (mode {mode:04o}), so its contents "
            f"cannot be trusted; delete it, or chmod 600 it if you know nobody changed it"
        )
    if private and mode & 0o077:
        raise StoreError(
            f"{where} may be read by other users (mode {mode:04o}); chmod 600 it"
        )


def check_directory(directory: Path, what: str) -> None:
    """Refuse a directory anyone may write to without the sticky bit."""
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise StoreError(f"cannot create {what}: {exc.strerror}") from None
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise StoreError(
            f"the directory {str(directory)!r} of {what} is writable by everybody and not "
            f"sticky (mode {stat.S_IMODE(st.st_mode):04o}): others could replace its files"
        )


def open_checked(path: Path, what: str, *, private: bool, flags: int = os.O_RDONLY) -> int:
    """Open an existing file without following a link and check it; return the descriptor.

    Raises:
        FileNotFoundError: there is no file at *path*.
        StoreError: a link, not a regular file, not ours, or too open.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            raise StoreError(
                f"{what} {str(path)!r} is a symbolic link; refusing to follow it"
            ) from None
        raise StoreError(f"cannot open {what} {str(path)!r}: {exc.strerror}") from None
    try:
        check_file(os.fstat(fd), path, what, private=private)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: Path, what: str, limit: int = 1 << 16) -> bytes:
    """Read a file that must be ours and readable by us alone (see check_file)."""
    fd = open_checked(path, what, private=True)
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise StoreError(f"{what} {str(path)!r} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def create_private(path: Path, data: bytes) -> bool:
    """Create *path* (0600) holding *data*, atomically; False if it already exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # in case the umask removed owner bits
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_or_create_key(path: Path, what: str = "store key file") -> tuple[bytes, bool]:
    """Read the 32-byte key in *path*, creating the file on first use; (key, created).

    The file holds 64 hexadecimal characters and a newline; it is created 0600
    and must stay ours and private (see check_file).
    """
    from .base import KEY_LEN, _parse_key

    created = False
    try:
        raw = read_private(path, what)
    except FileNotFoundError:
        try:
            created = create_private(path, secrets.token_bytes(KEY_LEN).hex().encode() + b"\n")
        except OSError as exc:
            raise StoreError(f"cannot create {what} {str(path)!r}: {exc.strerror}") from None
        try:
            raw = read_private(path, what)
        except FileNotFoundError:
            raise StoreError(f"{what} {str(path)!r} vanished as it was created") from None
    return _parse_key(raw, f"{what} {str(path)!r}"), created


# -- URLs ---------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """*url* with its password (in the authority or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if sep else f"{userinfo}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
                query = urlencode(
                    [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                    safe="*",
                )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<a URL that cannot be parsed>"


def scrub(text: str, url: str) -> str:
    """*text* with every spelling of *url* and of its password replaced by redacted ones."""
    text = text.replace(url, redact_url(url))
    secrets_in_url: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            secrets_in_url.append(parts.password)
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if k.lower() in _SECRET_PARAMS and v:
                secrets_in_url.append(v)
    except ValueError:
        return text
    for secret in secrets_in_url:
        for spelling in {secret, quote(secret, safe="")}:
            if spelling:
                text = text.replace(spelling, "***")
    return text
