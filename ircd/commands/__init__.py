"""The commands: one table, one dispatcher, one module of handlers per area.

Where is X handled? Every command is a row of ``table.py``, which names its
handler and its properties (before registration, minimum parameters, oper
privilege, idle time, world-changing / local / routed). The handlers:
``registration.py`` (CAP PASS NICK USER PING PONG QUIT), ``messaging.py``
(PRIVMSG NOTICE TAGMSG, and the PRIVMSG fast path), ``channels.py`` (JOIN
PART TOPIC NAMES LIST KICK INVITE MODE), ``queries.py`` (WHO WHOIS WHOWAS ISON
USERHOST AWAY SETNAME LUSERS MOTD VERSION TIME INFO ADMIN LINKS STATS HELP
HELPOP), ``sasl.py`` (AUTHENTICATE), ``account_registration.py`` (REGISTER
VERIFY), ``services.py`` (NS NICKSERV CS CHANSERV), ``monitor.py`` (MONITOR),
``chathistory.py`` (CHATHISTORY), ``oper.py`` (OPER KILL WALLOPS REHASH DIE
KLINE DLINE UNKLINE UNDLINE). ``utf8only.py`` refuses a line that is not
UTF-8 before dispatch (IRCv3 UTF8ONLY).

The row type and the dispatcher with its shared checks are in
``registry.py``. Handler modules import only the registry and the shared
world operations of :mod:`ircd.ops` (logging in, the welcome burst, joining a
channel, presence, oper checks, server bans, batches), never one another.
Capabilities are listed in ``ircd/capabilities.py``.
"""

from ircd.commands import table  # noqa: F401 - fills COMMANDS
from ircd.commands.messaging import relay_direct_fast
from ircd.commands.registry import COMMANDS, CommandSpec, Context, Effect, dispatch
from ircd.commands.utf8only import refuse_invalid_utf8

__all__ = ["COMMANDS", "CommandSpec", "Context", "Effect", "dispatch", "refuse_invalid_utf8",
           "relay_direct_fast"]
