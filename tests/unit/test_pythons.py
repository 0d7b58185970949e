"""The Pythons resume claims are the Pythons it tests, everywhere they are named.

pyproject.toml's classifiers, the noxfile's test sessions, the README's set-up line
and the OpenSSL binding's known layouts must name the same versions, and the Python
running this suite must be one of them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from resume._openssl import binding as _openssl

ROOT = Path(__file__).resolve().parents[2]


def _noxfile_list(name: str) -> list[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                assert isinstance(value, list)
                return [str(v) for v in value]
    raise AssertionError(f"noxfile.py defines no {name}")


def _versions(text: str) -> list[str]:
    return sorted(set(re.findall(r"\b3\.1\d\b", text)), key=lambda v: int(v.split(".")[1]))


CLAIMED = ["3.10", "3.11", "3.12", "3.13"]


def test_classifiers_name_the_tested_pythons() -> None:
    """pyproject.toml lists one classifier per tested version and requires the oldest."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)
    assert found == CLAIMED
    assert f'requires-python = ">={CLAIMED[0]}"' in text


def test_noxfile_tests_every_claimed_python() -> None:
    """nox runs the tests and the core tests on each claimed version."""
    assert _noxfile_list("TEST_PYTHONS") == CLAIMED
    for path in _noxfile_list("CORE_TESTS"):
        assert (ROOT / path).is_file(), path


def test_readme_states_the_tested_pythons() -> None:
    """The README's set-up section names exactly the tested versions."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set-up", 1)[1].split("```", 1)[0]
    assert _versions(setup) == CLAIMED


def test_binding_knows_the_claimed_pythons_and_this_one() -> None:
    """The probe's known layouts are the claimed versions, and this Python is one."""
    known = [f"{a}.{b}" for a, b in sorted(_openssl._KNOWN_PYTHONS)]
    assert known == CLAIMED
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in CLAIMED
