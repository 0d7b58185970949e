# Theory of operation: the resumption probe's results, verdicts and output
# ========================================================================
#
# ``resume probe`` (and :func:`resume.probe`) asks a server -- or every address
# of a fleet -- whether it really resumes TLS sessions. The network part lives in
# ``resume._probe.run``; this module is the I/O-free part: the result model, the
# rules that turn counts into verdicts, the JSON document and the human table.
#
# What is measured, per TLS version (each pinned on its own):
#
# * TLS 1.2 has two mechanisms, measured apart. *Session IDs*: the client offers
#   no ticket (``OP_NO_TICKET``), so only the server's session cache can resume.
#   *Tickets*: the client offers a ticket the server sent; OpenSSL's server never
#   falls back to its cache when a ticket is present (ssl_get_prev_session), so a
#   resumption there is the ticket's. A server that sends no ticket gets "not
#   offered" rather than "0 of N".
# * TLS 1.3 has one: a PSK from a NewSessionTicket. Tickets arrive *after* the
#   handshake, so every connection waits for them before it closes. The chain
#   follows resume's own default client policy (resume._core.policy, through
#   the same ClientConnection and SessionCache): every ticket kept, each offered
#   once. Whether one ticket is accepted twice is measured too (RFC 8446 C.4
#   asks clients not to reuse; servers may or may not refuse): it decides
#   whether ``tls13_ticket_reuse=True`` would help.
#
# The verdict rules, in one place (``judge_version`` and ``judge_fleet``):
#
# * TLS 1.3 works when at least 90% of the PSK chain resumed (TLS13_WORKS_SHARE),
#   the chain being what resume's clients do by default: every ticket the
#   server sends is kept, each is offered once, and a connection that finds none
#   makes a full handshake; partial when some resumed, with ``advice`` saying why
#   and what would help (a server that sends tickets only after full handshakes
#   and accepts a reused ticket: SessionCache(tls13_ticket_reuse=True)).
# * TLS 1.2 works when every ticket attempt resumed, or -- for a server that
#   sends no tickets -- every session-ID attempt did. A server that sends tickets
#   it then refuses does not work for ordinary clients (they offer the ticket,
#   and the server does not fall back to the cache), whatever its cache does.
# * A fleet (``all_addresses``) works when the same holds for every probed cell
#   of the "session from A, resumed on B" matrix.
# * The probe works (exit 0) when every version the server speaks works (and
#   its fleet too); none (exit 1) when nothing resumed anywhere; partial (exit 1)
#   otherwise. A probe that could not run raises ProbeError (exit 2).
#
# Which cells of a fleet matrix are probed (``fleet_plan``). Probing every
# ordered pair costs N**2 cells: 15 addresses took 4,050 connections and 80 s.
# The plan is a star around a reference address (the first one), 3N - 2 cells:
#
# * the diagonal, (A, A) for every A: each backend resumes its own sessions, so
#   a failure off the diagonal is about sharing, not about a broken backend;
# * (R, A) and (A, R) for every other A: the reference's sessions resume on A,
#   and A's on the reference, in both directions since sharing need not be
#   symmetric (a server that keeps an old key for decryption only accepts
#   tickets it would no longer issue).
#
# What the star proves: every address that shares with the reference, both ways,
# accepts its sessions, and with ticket keys or a cache shared by a group
# ("can resume each other" is then an equivalence) those addresses form one
# group; an address that does not share with the reference is named by its two
# failing cells. What it does not prove: whether two addresses that both fail
# with the reference share with each other (the fleet is partial by then
# anyway). With one or two addresses the star is every cell. Cells outside the
# plan hold a tally "not probed" (attempts 0); the verdict ignores them.
#
# The JSON document is versioned (``"schema": "resume-probe/1"``); fields are
# only ever added to it, never renamed or removed, within one schema version.
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, final

from .._core.errors import ResumeError

__all__ = [
    "JSON_SCHEMA",
    "FleetMatrix",
    "ProbeError",
    "ProbeResult",
    "ResumptionTally",
    "VersionProbe",
    "fleet_plan",
    "judge_fleet",
    "judge_version",
    "median_ms",
]

#: The ``schema`` field of every JSON document ``resume probe --json`` prints.
JSON_SCHEMA: Final = "resume-probe/1"

#: Verdict words, best first.
WORKS: Final = "works"
#: The share of a TLS 1.3 chain that must resume for "works".
TLS13_WORKS_SHARE: Final = 0.9
PARTIAL: Final = "partial"
NONE: Final = "none"
UNSUPPORTED: Final = "unsupported"

#: The note of a fleet cell outside the plan (see ``fleet_plan``).
NOT_PROBED: Final = "not probed"


class ProbeError(ResumeError):
    """The probe could not run: the name does not resolve, the port refuses, the
    certificate does not verify (without ``insecure``), the server does not speak
    TLS 1.2 or 1.3, or an argument is out of range. The message is one line.
    """


@final
@dataclass(frozen=True)
class ResumptionTally:
    """How many of a series of resumption attempts resumed ("resumed k of N").

    ``attempts`` is 0 when the series could not start (say, the server sent no
    ticket to offer); ``note`` then says why.
    """

    resumed: int
    attempts: int
    note: str = ""

    @property
    def works(self) -> bool:
        """True when there were attempts and every one resumed."""
        return self.attempts > 0 and self.resumed == self.attempts

    def __str__(self) -> str:
        if self.attempts == 0:
            return f"not tried ({self.note})" if self.note else "not tried"
        return f"{self.resumed} of {self.attempts}"

    def as_json(self) -> dict[str, Any]:
        """This tally as a JSON object (see the schema in the docs)."""
        return {"resumed": self.resumed, "attempts": self.attempts, "note": self.note or None}


@final
@dataclass(frozen=True)
class VersionProbe:
    """What the probe found for one TLS version ("1.2" or "1.3").

    ``session_id`` is only measured on TLS 1.2; ``ticket`` is the ticket series
    on TLS 1.2 and the PSK series on TLS 1.3. Times are medians in milliseconds
    of the TLS handshake alone (TCP connect excluded); None when there was no
    such handshake. ``tickets_per_handshake`` and ``ticket_reuse_accepted`` are
    None when they could not be observed.
    """

    version: str
    supported: bool
    error: str = ""
    protocol: str = ""
    cipher: str = ""
    certificate_verified: bool = False
    certificate_reason: str = ""
    session_id: ResumptionTally | None = None
    ticket: ResumptionTally | None = None
    tickets_per_handshake: int | None = None
    ticket_reuse_accepted: bool | None = None
    ticket_lifetime_hint: int | None = None
    client_session_timeout: int | None = None
    full_handshake_ms: float | None = None
    resumed_handshake_ms: float | None = None
    #: Why a version resumes only partly, and what would help ("" otherwise).
    advice: str = ""
    #: TLS 1.3: the most tickets a resumed connection brought (0: the server
    #: sends tickets only after full handshakes); None when not observed.
    tickets_after_resumption: int | None = None

    @property
    def verdict(self) -> str:
        """"works", "partial", "none" or "unsupported", by the rules of the how-to page."""
        return judge_version(self)

    @property
    def saved_ms(self) -> float | None:
        """Full minus resumed handshake time (median), or None without both."""
        if self.full_handshake_ms is None or self.resumed_handshake_ms is None:
            return None
        return self.full_handshake_ms - self.resumed_handshake_ms

    @property
    def summary(self) -> str:
        """The one-line verdict for this version."""
        name = f"TLS {self.version}"
        if not self.supported:
            return f"{name}: not spoken by the server ({self.error})"
        verdict = self.verdict
        parts = []
        if self.version == "1.2":
            assert self.session_id is not None and self.ticket is not None
            parts.append(f"tickets {self.ticket}, session IDs {self.session_id}")
        else:
            assert self.ticket is not None
            tickets = self.tickets_per_handshake
            sent = f", {tickets} ticket(s) per handshake" if tickets is not None else ""
            parts.append(f"PSK {self.ticket}{sent}")
        saved = self.saved_ms
        if saved is not None and self.full_handshake_ms:
            parts.append(
                f"saves {saved:.1f} ms of {self.full_handshake_ms:.1f} ms"
            )
        word = {WORKS: "resumes", PARTIAL: "resumes only partly", NONE: "does not resume"}[verdict]
        advice = f": {self.advice}" if self.advice and verdict != WORKS else ""
        return f"{name}: {word} ({'; '.join(parts)}){advice}"

    def as_json(self) -> dict[str, Any]:
        """This version's findings as a JSON object (see the schema in the docs)."""
        saved = self.saved_ms
        percent = (
            round(100.0 * saved / self.full_handshake_ms, 1)
            if saved is not None and self.full_handshake_ms
            else None
        )
        return {
            "version": self.version,
            "supported": self.supported,
            "error": self.error or None,
            "protocol": self.protocol or None,
            "cipher": self.cipher or None,
            "certificate": (
                {"verified": self.certificate_verified, "reason": self.certificate_reason}
                if self.supported
                else None
            ),
            "session_id": self.session_id.as_json() if self.session_id else None,
            "ticket": self.ticket.as_json() if self.ticket else None,
            "tickets_per_handshake": self.tickets_per_handshake,
            "ticket_reuse_accepted": self.ticket_reuse_accepted,
            "ticket_lifetime_hint": self.ticket_lifetime_hint,
            "client_session_timeout": self.client_session_timeout,
            "handshake_ms": {
                "full": _round(self.full_handshake_ms),
                "resumed": _round(self.resumed_handshake_ms),
                "saved": _round(saved),
                "saved_percent": percent,
            },
            "verdict": self.verdict,
            "summary": self.summary,
            "advice": self.advice or None,
            "tickets_after_resumption": self.tickets_after_resumption,
        }


@final
@dataclass(frozen=True)
class FleetMatrix:
    """Which address resumes a session made on which, for one version and mechanism.

    ``cells[i][j]`` tallies sessions made on ``addresses[i]`` and offered to
    ``addresses[j]``; ``mechanism`` is "session-id", "ticket" (TLS 1.2) or "psk"
    (TLS 1.3).

    ``reference`` is the centre of the probe's plan (a star around the first address):
    only the diagonal and the cells from and to the reference were probed, and
    the others hold a tally with the note "not probed". None means every cell
    was probed.
    """

    version: str
    mechanism: str
    addresses: tuple[str, ...]
    cells: tuple[tuple[ResumptionTally, ...], ...]
    reference: str | None = None

    def probed(self, row: int, column: int) -> bool:
        """True when the cell (*row*, *column*) is part of the plan."""
        if self.reference is None or row == column:
            return True
        return self.reference in (self.addresses[row], self.addresses[column])

    def probed_cells(self) -> list[ResumptionTally]:
        """The tallies of the probed cells, row by row."""
        return [
            cell
            for i, row in enumerate(self.cells)
            for j, cell in enumerate(row)
            if self.probed(i, j)
        ]

    @property
    def works(self) -> bool:
        """True when every probed cell resumed every time."""
        cells = self.probed_cells()
        return bool(cells) and all(cell.works for cell in cells)

    @property
    def resumed_any(self) -> bool:
        """True when at least one attempt in some cell resumed."""
        return any(cell.resumed for row in self.cells for cell in row)

    def as_json(self) -> dict[str, Any]:
        """This matrix as a JSON object (see the schema in the docs)."""
        return {
            "version": self.version,
            "mechanism": self.mechanism,
            "addresses": list(self.addresses),
            "cells": [[cell.as_json() for cell in row] for row in self.cells],
            "reference": self.reference,
        }


@final
@dataclass(frozen=True)
class ProbeResult:
    """Everything :func:`resume.probe` found about one server (or fleet).

    ``address`` is the address the per-version series ran against (the first one
    the name resolved to); ``addresses`` is every address, and ``fleet`` holds
    the cross-address matrices when the probe ran with ``all_addresses``.
    """

    host: str
    port: int
    server_name: str
    address: str
    addresses: tuple[str, ...]
    versions: tuple[VersionProbe, ...]
    fleet: tuple[FleetMatrix, ...] = field(default=())
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        """"works" (every version the server speaks resumes), "partial" or "none"."""
        verdicts = [v.verdict for v in self.versions if v.supported]
        verdicts += [judge_fleet(self.fleet, version) for version in _fleet_versions(self.fleet)]
        if verdicts and all(v == WORKS for v in verdicts):
            return WORKS
        if not verdicts or all(v == NONE for v in verdicts):
            return NONE
        return PARTIAL

    @property
    def exit_status(self) -> int:
        """The command's exit status: 0 when the verdict is "works", else 1."""
        return 0 if self.verdict == WORKS else 1

    def as_json(self) -> dict[str, Any]:
        """The stable JSON document of ``resume probe --json`` (schema ``resume-probe/1``)."""
        return {
            "schema": JSON_SCHEMA,
            "target": {
                "host": self.host,
                "port": self.port,
                "server_name": self.server_name,
                "address": self.address,
                "addresses": list(self.addresses),
            },
            "versions": [v.as_json() for v in self.versions],
            "fleet": [m.as_json() for m in self.fleet],
            "fleet_verdicts": {
                version: judge_fleet(self.fleet, version)
                for version in _fleet_versions(self.fleet)
            },
            "verdict": self.verdict,
            "exit_status": self.exit_status,
            "seconds": round(self.seconds, 3),
            "error": None,
        }

    def render(self) -> str:
        """The human report: a short table, one verdict line per version, the matrices."""
        lines = [
            f"resume probe {_hostport(self.host, self.port)} "
            f"(address {self.address}, server name {self.server_name})"
        ]
        columns = [v for v in self.versions]
        rows: list[tuple[str, list[str]]] = [
            ("handshake", [v.protocol if v.supported else "not spoken" for v in columns]),
            ("cipher", [v.cipher or "-" for v in columns]),
            ("certificate", [_cert_cell(v) for v in columns]),
            ("session-ID resumption", [_tally_cell(v.session_id) for v in columns]),
            ("ticket/PSK resumption", [_tally_cell(v.ticket) for v in columns]),
            ("tickets per handshake", [_opt(v.tickets_per_handshake) for v in columns]),
            ("ticket accepted twice", [_yes_no(v.ticket_reuse_accepted) for v in columns]),
            ("ticket lifetime hint", [_seconds(v.ticket_lifetime_hint) for v in columns]),
            ("handshake full", [_ms(v.full_handshake_ms) for v in columns]),
            ("handshake resumed", [_ms(v.resumed_handshake_ms) for v in columns]),
            ("saved by resumption", [_ms(v.saved_ms) for v in columns]),
        ]
        header = [f"TLS {v.version}" for v in columns]
        lines += _table([("", header), *rows])
        lines += [v.summary for v in self.versions]
        for matrix in self.fleet:
            lines.append(
                f"fleet, TLS {matrix.version} {matrix.mechanism}: "
                "session made on (row) resumed on (column)"
            )
            grid = [("", list(matrix.addresses))]
            for i, (address, row) in enumerate(zip(matrix.addresses, matrix.cells, strict=True)):
                grid.append((address, [
                    f"{c.resumed}/{c.attempts}" if matrix.probed(i, j) else "-"
                    for j, c in enumerate(row)
                ]))
            lines += ["  " + line for line in _table(grid)]
            if any(
                not matrix.probed(i, j)
                for i in range(len(matrix.addresses)) for j in range(len(matrix.addresses))
            ):
                lines.append(
                    f"  (-: not probed; each address was tried with {matrix.reference}, "
                    "both ways, and with itself)"
                )
        for version in _fleet_versions(self.fleet):
            lines.append(f"fleet, TLS {version}: {judge_fleet(self.fleet, version)}")
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def judge_version(probe: VersionProbe) -> str:
    """The verdict for one version, by the rules at the top of this module."""
    if not probe.supported:
        return UNSUPPORTED
    ticket = probe.ticket or ResumptionTally(0, 0)
    session_id = probe.session_id or ResumptionTally(0, 0)
    if probe.version == "1.3":
        # What resume's clients get by default (every ticket kept, each used
        # once): "works" from 90% of the chain on.
        works = ticket.attempts > 0 and ticket.resumed >= TLS13_WORKS_SHARE * ticket.attempts
        resumed_any = ticket.resumed > 0
    else:
        tickets_sent = ticket.attempts > 0
        works = ticket.works or (not tickets_sent and session_id.works)
        resumed_any = ticket.resumed > 0 or session_id.resumed > 0
    if works:
        return WORKS
    return PARTIAL if resumed_any else NONE


def judge_fleet(matrices: Sequence[FleetMatrix], version: str) -> str:
    """The fleet verdict for one version: the per-version rule, applied to every cell."""
    found = {m.mechanism: m for m in matrices if m.version == version}
    if not found:
        return UNSUPPORTED
    if version == "1.3":
        psk = found.get("psk")
        works = psk is not None and psk.works
    else:
        ticket, session_id = found.get("ticket"), found.get("session-id")
        tickets_sent = ticket is not None and any(
            c.attempts for row in ticket.cells for c in row
        )
        works = (ticket is not None and tickets_sent and ticket.works) or (
            not tickets_sent and session_id is not None and session_id.works
        )
    if works:
        return WORKS
    return PARTIAL if any(m.resumed_any for m in found.values()) else NONE


def fleet_plan(count: int) -> list[tuple[int, int]]:
    """The cells a fleet of *count* addresses is probed on: 3 * count - 2 of them.

    The diagonal first, then (0, j) and (j, 0) for every other address j: a star
    around the first address (the reference), as the rules at the top of this
    module explain. Linear in *count*, where every ordered pair would be quadratic.
    """
    plan = [(i, i) for i in range(count)]
    for j in range(1, count):
        plan += [(0, j), (j, 0)]
    return plan


def median_ms(seconds: Sequence[float]) -> float | None:
    """The median of *seconds*, in milliseconds; None for no samples."""
    return statistics.median(seconds) * 1000.0 if seconds else None


def error_json(message: str) -> dict[str, Any]:
    """The JSON document printed when the probe could not run (exit status 2)."""
    return {"schema": JSON_SCHEMA, "error": message, "exit_status": 2}


def _fleet_versions(matrices: Sequence[FleetMatrix]) -> list[str]:
    return sorted({m.version for m in matrices})


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cert_cell(v: VersionProbe) -> str:
    if not v.supported:
        return "-"
    return "verified" if v.certificate_verified else f"NOT verified: {v.certificate_reason}"


def _tally_cell(tally: ResumptionTally | None) -> str:
    return "-" if tally is None else str(tally)


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _seconds(value: int | None) -> str:
    return "-" if value is None else f"{value} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _table(rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    width0 = max(len(label) for label, _ in rows)
    ncols = max(len(cells) for _, cells in rows)
    widths = [
        max(len(cells[i]) for _, cells in rows if i < len(cells)) for i in range(ncols)
    ]
    out = []
    for label, cells in rows:
        text = label.ljust(width0)
        for i, cell in enumerate(cells):
            text += "  " + cell.ljust(widths[i])
        out.append(text.rstrip())
    return out


for _obj in (FleetMatrix, ProbeError, ProbeResult, ResumptionTally, VersionProbe):
    _obj.__module__ = "resume"
