"""Redis URLs as resume's own client reads them (no socket: parsing only)."""

from __future__ import annotations

import pytest

from resume._stores.redisclient import parse_url


class TestParseUrl:
    """parse_url: redis://, rediss:// and unix:// as redis-py spells them."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("redis://127.0.0.1", ("redis", "127.0.0.1", 6379, "", 0, None, None)),
            ("redis://h:6380/2", ("redis", "h", 6380, "", 2, None, None)),
            ("redis://:pw@h/0", ("redis", "h", 6379, "", 0, None, "pw")),
            ("redis://alice:p%40ss@h/1", ("redis", "h", 6379, "", 1, "alice", "p@ss")),
            ("redis://h/0?password=pw&username=bob",
             ("redis", "h", 6379, "", 0, "bob", "pw")),
            ("redis://[::1]:7000/3", ("redis", "::1", 7000, "", 3, None, None)),
            ("rediss://h:6380/0", ("rediss", "h", 6380, "", 0, None, None)),
            ("unix:///run/redis.sock?db=4", ("unix", "", 6379, "/run/redis.sock", 4, None, None)),
            ("unix://u:pw@/tmp/r.sock", ("unix", "", 6379, "/tmp/r.sock", 0, "u", "pw")),
        ],
    )
    def test_reads(self, url: str, expected: tuple[object, ...]) -> None:
        """Host, port, socket path, database and login come out of every spelling."""
        ep = parse_url(url)
        assert (ep.scheme, ep.host, ep.port, ep.path, ep.db, ep.username, ep.password) == expected

    def test_tls_options(self) -> None:
        """ssl_* query parameters are kept for rediss://."""
        ep = parse_url("rediss://h/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required")
        assert dict(ep.tls) == {"ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required"}

    def test_password_not_in_repr_or_messages(self) -> None:
        """The endpoint's repr and every refusal hide the password."""
        assert "hunter2" not in repr(parse_url("redis://u:hunter2@h/0"))
        for url in ("redis://u:hunter2@h/0?nope=1", "redis://u:hunter2@h/x",
                    "http://u:hunter2@h/"):
            with pytest.raises(ValueError, match="Redis URL") as info:
                parse_url(url)
            assert "hunter2" not in str(info.value) and "***" in str(info.value)

    def test_where(self) -> None:
        """Messages name host:port ([v6]:port) or the socket path, never the login."""
        assert parse_url("redis://u:pw@h:1/0").where == "h:1"
        assert parse_url("redis://[::1]/0").where == "[::1]:6379"
        assert parse_url("unix:///tmp/r.sock").where == "/tmp/r.sock"
