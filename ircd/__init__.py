"""chatserver's IRC daemon.

Layout (one module per concern):

- ``ircd.protocol``: the sans-I/O wire layer (framing, message parsing and
  serialising, casemapping, numerics). No asyncio anywhere in it.
- ``ircd.state``: the world: users, their sessions (connections), channels
  and the nick table, independent of which dialect a user speaks.
- ``ircd.core``: the sans-I/O core, the ``Server`` that owns the world.
- ``ircd.worldlog``: the one interface every change of the world goes
  through, and the single node's log.
- ``ircd.commands``: one command table (``table.py``) and one dispatcher
  (``registry.py``); one module of handlers per family of commands
  (``messaging.py`` holds PRIVMSG, NOTICE and TAGMSG).
- ``ircd.ops``: the world operations several handlers share (login, the
  welcome burst, channel membership, presence, privileges, server bans).
- ``ircd.accounts``, ``ircd.history``, ``ircd.serverbans``,
  ``ircd.chanstore``: the domain side of each store (argon2id accounts
  through passlib, history, bans, registered channels);
  ``ircd.storage``: their SQLite and PostgreSQL backends.
- ``ircd.services``: NickServ and ChanServ.
- ``ircd.simple``: the course SEND/SEND-OK dialect as a second front end.
- ``ircd.net`` and ``ircd.websocket``: the asyncio edge (listeners,
  connections, send queues), IRC over TCP, TLS and WebSocket.
- ``ircd.cluster``: cluster mode over Redis, attached to the core only as
  its world log.
- ``ircd.config`` and ``ircd.cli``: configuration and the ``chatserver`` command.

docs/architecture.md is the map of the whole package.
"""

__version__ = "0.1.0"
