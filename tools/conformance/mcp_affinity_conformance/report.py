"""Measured rows and their Markdown table (fixed column set and order)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = (
    "server mode", "routing", "client", "scenario", "sessions", "calls ok", "calls failed",
    "sessions lost", "GET stream on session's replica", "notification across replicas",
    "pins added / requests", "notes",
)
SCENARIOS = ("steady", "kill + restart r0", "restart a pinning proxy", "random session ids")


@dataclass(frozen=True)
class Row:
    """One measured combination: server mode x routing x client kind x scenario.

    ``get_streams`` is (accepted, opened) or None where the mode has no GET stream;
    ``listen`` is True/False for a cross-replica ``subscriptions/listen`` check, None where the
    mode has none; ``held_by_killed`` counts sessions the killed replica had created (kill
    scenario only); ``lost_on_killed`` those of them that were lost; ``restarted_ok`` is
    (sessions ok, sessions) opened after the killed replica came back; ``pins_added`` is
    (pins stored, requests sent) for the random-session-id flood; ``crossed_proxies`` counts the
    sessions whose requests were served by more than one pinning proxy (learned only).
    """

    server: str
    routing: str
    client: str
    scenario: str
    sessions: int
    calls_ok: int
    calls_failed: int
    sessions_lost: int
    get_streams: tuple[int, int] | None = None
    listen: bool | None = None
    held_by_killed: int | None = None
    lost_on_killed: int | None = None
    restarted_ok: tuple[int, int] | None = None
    pins_added: tuple[int, int] | None = None
    crossed_proxies: int | None = None
    notes: str = ""

    def cells(self) -> tuple[str, ...]:
        """The row's cells in :data:`COLUMNS` order."""
        streams = "n/a" if self.get_streams is None else "{}/{}".format(*self.get_streams)
        listen = {None: "n/a", True: "delivered", False: "not delivered"}[self.listen]
        pins = "n/a" if self.pins_added is None else "{}/{}".format(*self.pins_added)
        return (self.server, self.routing, self.client, self.scenario, str(self.sessions),
                str(self.calls_ok), str(self.calls_failed), str(self.sessions_lost),
                streams, listen, pins, self.notes)


def to_markdown(rows: Sequence[Row]) -> str:
    """A GitHub Markdown table of ``rows`` with the :data:`COLUMNS` header, rows as given."""
    lines = [_line(COLUMNS), _line(("---",) * len(COLUMNS))]
    lines += [_line(row.cells()) for row in rows]
    return "\n".join(lines) + "\n"


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def verdict(row: Row) -> str:
    """One steady row as a stable verdict: ``works`` (no call failed) or ``loses sessions``."""
    return "works" if row.sessions_lost == 0 and row.calls_failed == 0 else "**loses sessions**"


def summary_markdown(rows: Sequence[Row]) -> str:
    """Which routing keeps which server's sessions, per client kind: the README's table.

    Built from the steady rows only, as verdicts (not counts), so repeated runs give the same
    table wherever the measured facts hold; the notification column says whether a
    ``subscriptions/listen`` stream on one replica got a notification sent through another.
    """
    steady = [r for r in rows if r.scenario == SCENARIOS[0]]
    routings = list(dict.fromkeys(r.routing for r in steady))
    clients = list(dict.fromkeys(r.client for r in steady))
    header = ["server", *[f"{routing}, {client}" for routing in routings for client in clients], "notifications across replicas"]
    lines = [_line(header), _line(("---",) * len(header))]
    for server in dict.fromkeys(r.server for r in steady):
        mine = {(r.routing, r.client): r for r in steady if r.server == server}
        listens = {r.listen for r in mine.values()}
        listen = "n/a" if listens == {None} else "delivered" if listens == {True} else "not delivered (in-process bus)"
        cells = [verdict(mine[(routing, client)]) if (routing, client) in mine else "n/a"
                 for routing in routings for client in clients]
        lines.append(_line([server, *cells, listen]))
    return "\n".join(lines) + "\n"
