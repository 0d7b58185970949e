"""Shared TLS session-ticket keys for server fleets (HAProxy's [previous, current, next] ring).

Install a :class:`TicketKeyRing` on a server :class:`ssl.SSLContext` with
:func:`install_ticket_keys`, or let :func:`install_from_spec` load and refresh
one from a key file (``file:PATH``) or Redis (``redis://HOST:PORT/DB``), as
``resume serve --ticket-keys`` does. Servers that share the keys resume each
other's TLS 1.2 and TLS 1.3 tickets, across rotations.
"""

from ._ticketkeys.ring import DEFAULT_REFRESH as DEFAULT_REFRESH
from ._ticketkeys.ring import DEFAULT_ROTATION_INTERVAL as DEFAULT_ROTATION_INTERVAL
from ._ticketkeys.ring import SECRET_ENV as SECRET_ENV
from ._ticketkeys.ring import KeyFile as KeyFile
from ._ticketkeys.ring import KeyRefresher as KeyRefresher
from ._ticketkeys.ring import KeySource as KeySource
from ._ticketkeys.ring import RedisKeySource as RedisKeySource
from ._ticketkeys.ring import TicketKey as TicketKey
from ._ticketkeys.ring import TicketKeyRing as TicketKeyRing
from ._ticketkeys.ring import install_from_spec as install_from_spec
from ._ticketkeys.ring import install_ticket_keys as install_ticket_keys
from ._ticketkeys.ring import source_from_spec as source_from_spec

__all__ = [
    "DEFAULT_REFRESH",
    "DEFAULT_ROTATION_INTERVAL",
    "KeyFile",
    "KeyRefresher",
    "KeySource",
    "RedisKeySource",
    "SECRET_ENV",
    "TicketKey",
    "TicketKeyRing",
    "install_from_spec",
    "install_ticket_keys",
    "source_from_spec",
]
