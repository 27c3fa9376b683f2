"""The command table: importing this package registers every handler.

Where is X handled? ``registration.py`` (CAP PASS NICK USER PING PONG QUIT),
``messaging.py`` (PRIVMSG NOTICE), ``channels.py`` (JOIN PART TOPIC NAMES
LIST KICK INVITE MODE), ``queries.py`` (WHO WHOIS WHOWAS ISON USERHOST AWAY
LUSERS MOTD VERSION TIME SETNAME INFO ADMIN LINKS STATS HELP), ``sasl.py`` (AUTHENTICATE), ``monitor.py``
(MONITOR), ``chathistory.py`` (CHATHISTORY), ``oper.py`` (OPER KILL WALLOPS
REHASH DIE KLINE DLINE UNKLINE UNDLINE). The table and dispatcher are in
``registry.py``; capabilities are listed in ``ircd/capabilities.py``.
"""

from ircd.commands import (  # noqa: F401
    account_registration,
    channels,
    chathistory,
    messaging,
    monitor,
    oper,
    queries,
    registration,
    sasl,
    services,
)
from ircd.commands.messaging import relay_direct_fast
from ircd.commands.registry import COMMANDS, Context, command, dispatch
from ircd.commands.utf8only import refuse_invalid_utf8

__all__ = ["COMMANDS", "Context", "command", "dispatch", "refuse_invalid_utf8", "relay_direct_fast"]
