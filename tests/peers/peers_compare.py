"""Compare an HTTP client's own test suite run as is and with resume's class swapped in.

``python tests/peers/peers_compare.py UNSWAPPED.json SWAPPED.json`` (the
reports of tests/peers/resume_peers.py) prints the counts of both runs and every
test that passed as is but not swapped. Such a test is a regression unless
KNOWN_DIFFERENCES names it with its reason; the script exits 1 on any
regression it cannot explain, and 3 when the swapped run says the swap did not
take effect.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

#: Tests of a client's own suite that cannot pass with resume's class, by client,
#: with the reason. Each is a test of the client's internals, not of its behaviour.
_OWN_DEFAULT = (
    "resume's connector made without ssl= verifies with resume's read-only default context "
    "(kept in the connector's _ssl, returned by _get_ssl_context()), not aiohttp's process-wide "
    "mutable _SSL_CONTEXT_VERIFIED: no mutable SSLContext shared between owners "
    "(docs/howto/aiohttp.rst)"
)
_LEFT_OPEN = (
    "follows a test above that failed before closing its connector: aiohttp's "
    "'Unclosed connector' ResourceWarning surfaces here (the test passes when run alone)"
)
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    "requests": {},
    "httpx": {},
    "aiohttp": {
        "tests/test_connector.py::test_tcp_connector_ctor": _OWN_DEFAULT,
        "tests/test_connector.py::test___get_ssl_context6": _OWN_DEFAULT,
        "tests/test_connector.py::test_ssl_context_once": _OWN_DEFAULT,
        "tests/test_connector.py::test_ssl_none": _OWN_DEFAULT,
        "tests/test_connector.py::test_tcp_connector_ssl_shutdown_timeout[pyloop]": _LEFT_OPEN,
        "tests/test_connector.py::test_close_twice[pyloop]": _LEFT_OPEN,
        "tests/test_connector.py::test_resolver_not_called_with_address_is_ip[pyloop]": _LEFT_OPEN,
    },
}


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except OSError as exc:
        print(f"no report: {exc} (the suite did not run)")
        return None
    return data


def _counts(report: dict[str, Any]) -> str:
    counts = Counter(report["outcomes"].values())
    return ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed"))


def main(argv: list[str]) -> int:
    """Print the comparison; return the exit status (0 same, 1 regression, 3 no swap, 4 no run)."""
    if len(argv) != 2:
        print(__doc__)
        return 2
    plain, swapped = _load(argv[0]), _load(argv[1])
    if plain is None or swapped is None:
        return 4
    client = str(swapped["client"])
    print(f"{client} as is:      {_counts(plain)}")
    print(f"{client} swapped in: {_counts(swapped)} "
          f"({swapped['instances']} instances of resume's class)")
    status = 0
    if swapped["swap_problems"] or not swapped["swapped"]:
        print(f"{client}: the swap did not take effect: {swapped['swap_problems']}")
        status = 3
    known = KNOWN_DIFFERENCES.get(client, {})
    passed_plain = {t for t, o in plain["outcomes"].items() if o == "passed"}
    passed_swapped = {t for t, o in swapped["outcomes"].items() if o == "passed"}
    lost = sorted(passed_plain - passed_swapped)
    gained = sorted(passed_swapped - passed_plain)
    for test in lost:
        reason = known.get(test)
        outcome = swapped["outcomes"].get(test, "not run")
        if reason is None:
            print(f"  REGRESSION ({outcome}): {test}")
            status = status or 1
        else:
            print(f"  known ({outcome}): {test}: {reason}")
    for test in gained:
        print(f"  passes only swapped ({plain['outcomes'].get(test, 'not run')} as is): {test}")
    print(f"{client}: {len(lost)} passing as is but not swapped "
          f"({len([t for t in lost if t not in known])} unexplained)")
    if not plain["outcomes"]:
        print(f"{client}: no test ran")
        status = status or 4
    if status == 0:
        print(f"{client}: OK" + (" (known differences only)" if lost else ""))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
