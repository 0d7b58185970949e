"""The ``resume-cli`` directive: the command-line reference, generated from argparse.

The page is built from :func:`resume._cli.build_parser`, the parser the ``resume``
command itself runs, so it cannot drift from the code. Each subcommand becomes a
section with its usage, its description and one ``option`` entry per argument,
under ``.. program:: resume NAME`` so that ``:option:`resume demo --count``` style
references resolve.

The text is made by a pure function (:func:`cli_rst`); the directive only parses it.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from docutils import nodes
from docutils.nodes import make_id
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    # (name, one-line help, parser) for each subcommand, in registration order.
    found: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, str(helps.get(name, "")), sub))
    return found


def _option_lines(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    lines: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            if action.nargs == 0:
                names = ", ".join(action.option_strings)
            else:
                metavar = formatter._format_args(action, action.dest.upper())
                names = ", ".join(f"{o} {metavar}" for o in action.option_strings)
        else:
            names = formatter._format_args(action, action.dest)
        help_text = formatter._expand_help(action) if action.help else ""
        lines.append(f".. option:: {names}")
        lines.append("")
        for line in textwrap.wrap(help_text or "(no description)", 88):
            lines.append(f"   {line}")
        lines.append("")
    return lines


def _usage(parser: argparse.ArgumentParser) -> list[str]:
    usage = parser.format_usage().strip()
    usage = usage.removeprefix("usage: ")
    return ["::", "", *(f"   {line}" for line in usage.splitlines()), ""]


def cli_rst(parser: argparse.ArgumentParser) -> list[tuple[str, str, list[str]]]:
    """Turn *parser* into sections: ``(title, section id, reST lines)``, top level first."""
    top: list[str] = [f".. program:: {parser.prog}", "", *_usage(parser)]
    if parser.description:
        top += [*textwrap.wrap(parser.description, 88), ""]
    top += _option_lines(parser)
    sections = [("", "", top)]
    for name, summary, sub in _subcommands(parser):
        body = [f".. program:: {sub.prog}", "", *_usage(sub)]
        text = sub.description or summary
        if text:
            body += [*textwrap.wrap(text, 88), ""]
        body += _option_lines(sub)
        if sub.epilog:
            body += [*textwrap.wrap(sub.epilog, 88), ""]
        sections.append((sub.prog, f"cmd-{name}", body))
    return sections


class ResumeCliDirective(SphinxDirective):
    """``.. resume-cli::``: the reference of every ``resume`` subcommand."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from resume._cli import build_parser

        result: list[nodes.Node] = []
        for title, section_id, lines in cli_rst(build_parser()):
            content = StringList(lines, source="<resume._cli.build_parser()>")
            if not title:
                container = nodes.container()
                self.state.nested_parse(content, self.content_offset, container)
                result.extend(container.children)
                continue
            section = nodes.section(ids=[make_id(section_id)])
            section += nodes.title(title, "", nodes.literal(title, title))
            self.state.nested_parse(content, self.content_offset, section)
            result.append(section)
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``resume-cli`` directive."""
    app.add_directive("resume-cli", ResumeCliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
