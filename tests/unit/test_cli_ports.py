"""Every port the command line parses: ASCII digits only, 1-65535, one wording.

``int()`` and ``str.isdigit()`` take Arabic-Indic, full-width and other Unicode
digits, so ``resume probe`` once read ``localhost:`` followed by a full-width 18443
as port 18443, where ``resume connect`` refused it. These are the parsers alone,
without a socket; the commands' exit codes and stderr lines are checked in
tests/integration (test_cli_errors.py, test_probe.py).
"""

from __future__ import annotations

import pytest

from resume._cli._common import parse_port
from resume._cli.connect import parse_target
from resume._cli.probe import parse_host_port

#: Ports that are not ports: other scripts' digits, signs, spaces, other bases.
BAD_PORTS = [
    "\uff11\uff18\uff14\uff14\uff13",  # full-width 18443
    "\u0664\u0664\u0663",  # Arabic-Indic 443
    "\u09ea\u09ea\u09e9",  # Bengali 443
    "\U0001d7fa\U0001d7fa\U0001d7f9",  # mathematical monospace 443
    "4\u200b43",  # a zero-width space inside
    "\u00b2",  # superscript two: isdigit() but not isdecimal()
    "+443",
    "-1",
    " 443",
    "443 ",
    "0x1bb",
    "1e3",
    "",
    "0",
    "65536",
    "99999999999999999999",
]


def message(text: str) -> str:
    return f"the port must be a number from 1 to 65535, got {text!r}"


class TestParsePort:
    @pytest.mark.parametrize("text", ["1", "443", "8443", "65535", "00443"])
    def test_ascii_digits(self, text: str) -> None:
        """ASCII digits in 1-65535 are a port (leading zeros too)."""
        assert parse_port(text) == int(text)

    @pytest.mark.parametrize("text", BAD_PORTS)
    def test_anything_else(self, text: str) -> None:
        """Anything else is a ValueError naming the text."""
        with pytest.raises(ValueError, match="the port must be") as exc:
            parse_port(text)
        assert str(exc.value) == message(text)

    def test_zero_where_allowed(self) -> None:
        """0 is a port to listen on (a free one), with its own range in the message."""
        assert parse_port("0", allow_zero=True) == 0
        with pytest.raises(ValueError, match="from 0 to 65535, got '\uff10'"):
            parse_port("\uff10", allow_zero=True)


class TestHostPort:
    @pytest.mark.parametrize("text", BAD_PORTS)
    def test_probe_and_connect_agree(self, text: str) -> None:
        """``probe`` and ``connect`` refuse the same ports with the same message."""
        for target in (f"localhost:{text}", f"[::1]:{text}"):
            with pytest.raises(ValueError, match="the port must be") as probe_error:
                parse_host_port(target)
            with pytest.raises(ValueError, match="the port must be") as connect_error:
                parse_target(target)
            assert str(probe_error.value) == str(connect_error.value) == message(text)

    def test_full_width_port_is_not_18443(self) -> None:
        """The finding itself: probe read localhost and a full-width 18443 as port 18443."""
        with pytest.raises(ValueError, match="the port must be a number"):
            parse_host_port("localhost:\uff11\uff18\uff14\uff14\uff13")

    def test_good_targets(self) -> None:
        """The forms each command takes still parse."""
        assert parse_host_port("localhost:18443") == ("localhost", 18443)
        assert parse_host_port("localhost") == ("localhost", 443)
        assert parse_host_port("[::1]:8443") == ("::1", 8443)
        assert parse_target("localhost:18443") == ("localhost", 18443)
        assert parse_target("[::1]:8443") == ("::1", 8443)
