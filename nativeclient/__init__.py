"""chatclient: a friendly terminal client for the chatserver (and any IRC server).

Layers, each in its own module:

* :mod:`nativeclient.commands` -- what the user typed, parsed into commands
  (pure functions, no I/O);
* :mod:`nativeclient.wire` -- IRC lines: framing, parsing, CTCP, case
  folding (pure functions);
* :mod:`nativeclient.state` -- the IRC session as a pure state machine:
  registration and login, confirmations, room and user lists; received
  lines and the user's commands in, lines to send and events out (no
  socket, thread or clock);
* :mod:`nativeclient.session` -- the I/O link: the connection (asyncio
  streams, TLS, timeouts), the reader task that feeds the state, the
  futures the UI awaits (no terminal code);
* :mod:`nativeclient.events` -- the typed events the session reports;
* :mod:`nativeclient.render` -- events formatted as display lines (pure);
* :mod:`nativeclient.ui` -- the interactive terminal (prompt_toolkit) and the
  line-oriented pipe mode;
* :mod:`nativeclient.cli` -- argument parsing, password, exit codes.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
