"""chatserver's IRC daemon.

Layout (one module per concern):

- ``ircd.protocol``: the sans-I/O wire layer (framing, message parsing and
  serialising, casemapping, numerics). No asyncio anywhere in it.
- ``ircd.state``: the world: clients, channels and the nick table, independent
  of which dialect a user speaks.
- ``ircd.commands``: one command table and one dispatcher; one module per
  family of commands (``messaging.py`` holds PRIVMSG and NOTICE).
- ``ircd.accounts``: the account store (SQLite, argon2id through passlib).
- ``ircd.simple``: the course SEND/SEND-OK dialect as a second front end.
- ``ircd.net``: the asyncio edge (listeners, connections, send queues).
- ``ircd.config`` and ``ircd.cli``: configuration and the ``chatserver`` command.
"""

__version__ = "0.1.0"
