# Placeholder for the 'man2rst' subcommand; its owner replaces this module.
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register the 'man2rst' subcommand (not implemented yet)."""
    parser: argparse.ArgumentParser = subparsers.add_parser("man2rst", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: 2)
