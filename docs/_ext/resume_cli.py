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


def _option_lines(parser: argparse.ArgumentParser, actions: list[argparse.Action]) -> list[str]:
    formatter = parser._get_formatter()
    lines: list[str] = []
    for action in actions:
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


def _groups(parser: argparse.ArgumentParser) -> list[str]:
    # The arguments, group by group; groups other than argparse's own two get a heading.
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [
            a for a in group._group_actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        if group.title not in ("positional arguments", "options", "optional arguments"):
            lines += [f".. rubric:: {group.title}", ""]
        lines += _option_lines(parser, actions)
    return lines


def _text(parser: argparse.ArgumentParser, text: str | None) -> list[str]:
    # A description or epilog as reST. With a Raw*HelpFormatter the line breaks
    # mean something: an indented block (examples) stays a literal block, and a
    # line ending in ":" before it becomes its lead-in paragraph.
    if not text:
        return []
    formatter = parser.formatter_class
    raw = isinstance(formatter, type) and issubclass(
        formatter, argparse.RawDescriptionHelpFormatter
    )
    if not raw:
        return [*textwrap.wrap(" ".join(text.split()), 88), ""]
    lines: list[str] = []
    for block in textwrap.dedent(text).strip("\n").split("\n\n"):
        rows = block.splitlines()
        lead: list[str] = []
        if rows and not rows[0].startswith(" ") and rows[0].endswith(":") and len(rows) > 1:
            lead, rows = [rows[0][:1].upper() + rows[0][1:]], rows[1:]
        if rows and all(r.startswith(" ") or not r.strip() for r in rows):
            body = textwrap.dedent("\n".join(rows)).splitlines()
            lines += [*lead, ""] if lead else []
            lines += [".. code-block:: sh", "", *(f"   {r}" for r in body), ""]
        else:
            lines += [*textwrap.wrap(" ".join(lead + rows), 88), ""]
    return lines


def _usage(parser: argparse.ArgumentParser) -> list[str]:
    # Without argparse's "usage: " prefix; its continuation lines are indented to
    # follow the prefix, so they lose as many columns.
    first, *rest = parser.format_usage().strip().removeprefix("usage: ").splitlines()
    rest = [line[len("usage: "):] if line.startswith(" " * 7) else line for line in rest]
    return [".. code-block:: text", "", *(f"   {line}" for line in [first, *rest]), ""]


def cli_rst(parser: argparse.ArgumentParser) -> list[tuple[str, str, list[str]]]:
    """Turn *parser* into sections: ``(title, section id, reST lines)``, top level first."""
    top: list[str] = [f".. program:: {parser.prog}", "", *_usage(parser)]
    top += _text(parser, parser.description)
    top += _groups(parser)
    sections = [("", "", top)]
    for name, summary, sub in _subcommands(parser):
        body = [f".. program:: {sub.prog}", "", *_usage(sub)]
        body += _text(sub, sub.description or summary)
        body += _groups(sub)
        body += _text(sub, sub.epilog)
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
