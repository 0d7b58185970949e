# Placeholder for the 'serve' subcommand; its owner replaces this module.
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register the 'serve' subcommand (not implemented yet)."""
    parser: argparse.ArgumentParser = subparsers.add_parser("serve", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: 2)
