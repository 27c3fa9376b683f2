"""The command table: every command the server knows, declared once, in one place.

One row per command (in the manner of Ergo's ``irc/commands.go``), read as a
table:

- **handler**: the function that runs it, ``<module>.handle_<command>``, in
  ``ircd/commands/<module>.py`` (the shared world operations handlers call are
  in ``ircd/ops/``);
- **params**: the minimum number of parameters (fewer: 461 ERR_NEEDMOREPARAMS);
- **pre-reg**: usable before registration completes (otherwise 451
  ERR_NOTREGISTERED);
- **privilege**: ``OPER`` or ``ADMIN`` if only server operators (of class
  ``admin``) may use it (others: 481 ERR_NOPRIVILEGES);
- **idle**: counts as activity for WHOIS idle time (317 RPL_WHOISIDLE);
- **effect**: ``WORLD`` (changes the shared world: in a cluster it goes through
  the log and every node runs it), ``LOCAL`` (runs on the client's node: reads
  the world, or changes only the connection or the node) or ``ROUTED`` (a
  message to users); see :class:`~ircd.commands.registry.Effect`.

:func:`ircd.commands.registry.dispatch` makes every check these columns call
for, so a handler holds only its own logic. Capabilities are listed in
``ircd/capabilities.py``.

Handlers do not register themselves: this module imports the handler modules
and lists their functions, so the whole table is in this file, and importing
a handler module (a test does) has no effect on the server. Importing the
:mod:`ircd.commands` package imports this module, which fills
:data:`~ircd.commands.registry.COMMANDS` once.
"""

from __future__ import annotations

from ircd.commands import (
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
from ircd.commands.registry import ADMIN, COMMANDS, OPER, CommandSpec, Effect, Handler

WORLD, LOCAL, ROUTED = Effect.WORLD, Effect.LOCAL, Effect.ROUTED

_Row = tuple[str, Handler, int, bool, str | None, bool, Effect]

_ROWS: tuple[_Row, ...] = (
    # name           handler                               params pre-reg  privilege  idle   effect
    # -- Connection registration (RFC 2812 section 3.1; IRCv3 capability negotiation)
    ("CAP",          registration.handle_cap,              1,     True,    None,      False, LOCAL),
    ("PASS",         registration.handle_pass,             1,     True,    None,      False, LOCAL),
    ("NICK",         registration.handle_nick,             0,     True,    None,      False, WORLD),
    ("USER",         registration.handle_user,             4,     True,    None,      False, LOCAL),
    ("PING",         registration.handle_ping,             0,     True,    None,      False, LOCAL),
    ("PONG",         registration.handle_pong,             0,     True,    None,      False, LOCAL),
    ("QUIT",         registration.handle_quit,             0,     True,    None,      False, WORLD),

    # -- Accounts: SASL and account-registration (IRCv3), the services' aliases
    ("AUTHENTICATE", sasl.handle_authenticate,             1,     True,    None,      False, LOCAL),
    ("REGISTER",     account_registration.handle_register, 2,     True,    None,      False, LOCAL),
    ("VERIFY",       account_registration.handle_verify,   2,     True,    None,      False, LOCAL),
    ("NS",           services.handle_ns,                   0,     False,   None,      False, LOCAL),
    ("NICKSERV",     services.handle_nickserv,             0,     False,   None,      False, LOCAL),
    ("CS",           services.handle_cs,                   0,     False,   None,      False, WORLD),
    ("CHANSERV",     services.handle_chanserv,             0,     False,   None,      False, WORLD),

    # -- Messages (RFC 2812 section 3.3; IRCv3 message-tags)
    ("PRIVMSG",      messaging.handle_privmsg,             0,     False,   None,      True,  ROUTED),
    ("NOTICE",       messaging.handle_notice,              0,     False,   None,      True,  ROUTED),
    ("TAGMSG",       messaging.handle_tagmsg,              0,     False,   None,      True,  ROUTED),

    # -- Channels (RFC 2812 section 3.2; RFC 2811)
    ("JOIN",         channels.handle_join,                 1,     False,   None,      False, WORLD),
    ("PART",         channels.handle_part,                 1,     False,   None,      False, WORLD),
    ("TOPIC",        channels.handle_topic,                1,     False,   None,      False, WORLD),
    ("NAMES",        channels.handle_names,                0,     False,   None,      False, LOCAL),
    ("LIST",         channels.handle_list,                 0,     False,   None,      False, LOCAL),
    ("KICK",         channels.handle_kick,                 2,     False,   None,      False, WORLD),
    ("INVITE",       channels.handle_invite,               2,     False,   None,      False, WORLD),
    ("MODE",         channels.handle_mode,                 1,     False,   None,      False, WORLD),

    # -- Users and the server (RFC 2812 sections 3.4, 3.6, 4; IRCv3 setname)
    ("WHO",          queries.handle_who,                   0,     False,   None,      False, LOCAL),
    ("WHOIS",        queries.handle_whois,                 1,     False,   None,      False, LOCAL),
    ("WHOWAS",       queries.handle_whowas,                0,     False,   None,      False, LOCAL),
    ("ISON",         queries.handle_ison,                  1,     False,   None,      False, LOCAL),
    ("USERHOST",     queries.handle_userhost,              1,     False,   None,      False, LOCAL),
    ("AWAY",         queries.handle_away,                  0,     False,   None,      False, WORLD),
    ("SETNAME",      queries.handle_setname,               1,     False,   None,      False, WORLD),
    ("LUSERS",       queries.handle_lusers,                0,     False,   None,      False, LOCAL),
    ("MOTD",         queries.handle_motd,                  0,     False,   None,      False, LOCAL),
    ("VERSION",      queries.handle_version,               0,     False,   None,      False, LOCAL),
    ("TIME",         queries.handle_time,                  0,     False,   None,      False, LOCAL),
    ("INFO",         queries.handle_info,                  0,     False,   None,      False, LOCAL),
    ("ADMIN",        queries.handle_admin,                 0,     False,   None,      False, LOCAL),
    ("LINKS",        queries.handle_links,                 0,     False,   None,      False, LOCAL),
    ("STATS",        queries.handle_stats,                 0,     False,   None,      False, LOCAL),
    ("HELP",         queries.handle_help,                  0,     False,   None,      False, LOCAL),
    ("HELPOP",       queries.handle_help,                  0,     False,   None,      False, LOCAL),

    # -- Presence and history (IRCv3 monitor, draft/chathistory)
    ("MONITOR",      monitor.handle_monitor,               1,     False,   None,      False, LOCAL),
    ("CHATHISTORY",  chathistory.handle_chathistory,       1,     False,   None,      False, LOCAL),

    # -- Server operators (RFC 2812 sections 3.1.4, 3.7.1, 4.2, 4.3, 4.7; K/D-lines)
    ("OPER",         oper.handle_oper,                     2,     False,   None,      False, LOCAL),
    ("KILL",         oper.handle_kill,                     1,     False,   OPER,      False, WORLD),
    ("WALLOPS",      oper.handle_wallops,                  1,     False,   OPER,      False, WORLD),
    ("REHASH",       oper.handle_rehash,                   0,     False,   ADMIN,     False, LOCAL),
    ("DIE",          oper.handle_die,                      0,     False,   ADMIN,     False, LOCAL),
    ("KLINE",        oper.handle_kline,                    1,     False,   OPER,      False, WORLD),
    ("DLINE",        oper.handle_dline,                    1,     False,   OPER,      False, WORLD),
    ("UNKLINE",      oper.handle_unkline,                  1,     False,   OPER,      False, WORLD),
    ("UNDLINE",      oper.handle_undline,                  1,     False,   OPER,      False, WORLD),
)

TABLE: tuple[CommandSpec, ...] = tuple(CommandSpec(*row) for row in _ROWS)
"""Every command, in the order above."""

COMMANDS.update((spec.name, spec) for spec in TABLE)
if len(COMMANDS) != len(TABLE):
    raise ValueError("ircd/commands/table.py declares a command twice")
