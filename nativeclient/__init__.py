"""chatclient: a friendly terminal client for the chatserver (and any IRC server).

Layers, each in its own module:

* :mod:`nativeclient.commands` -- what the user typed, parsed into commands
  (pure functions, no I/O);
* :mod:`nativeclient.session` -- the IRC session: connection, reader thread,
  registration and login, confirmations, room and user lists (built on
  ``irc.client``; no terminal code);
* :mod:`nativeclient.events` -- the typed events the session reports;
* :mod:`nativeclient.render` -- events formatted as display lines (pure);
* :mod:`nativeclient.ui` -- the interactive terminal (prompt_toolkit) and the
  line-oriented pipe mode;
* :mod:`nativeclient.cli` -- argument parsing, password, exit codes.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
