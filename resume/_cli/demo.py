# Placeholder for the 'demo' subcommand; its owner replaces this module.
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register the 'demo' subcommand (not implemented yet)."""
    parser: argparse.ArgumentParser = subparsers.add_parser("demo", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: 2)
