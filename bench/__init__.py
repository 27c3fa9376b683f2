"""Load generator and scenario runner for chatserver (``python -m bench``).

The generator is one asyncio process (uvloop when importable) that opens
plain TCP connections to 127.0.0.1 only, registers IRC clients and drives
bounded scenarios (fan-out, direct messages, idle connections, registration
storm) against our server (``python -m ircd``) and/or ngIRCd, each started
as a subprocess on a free loopback port. See ``bench/README.md``.

Modules:

- :mod:`bench.client` -- the client protocol (minimal parsing: PRIVMSG bodies
  are found with one compiled regex per received chunk), senders, windows.
- :mod:`bench.servers` -- starting/stopping the servers, CPU pinning, the
  generated configuration files.
- :mod:`bench.procstat` -- CPU seconds and RSS of a process from ``/proc``.
- :mod:`bench.scenarios` -- the scenarios and their :class:`~bench.scenarios.Result`.
- :mod:`bench.report` -- the tables.
- :mod:`bench.cli` -- the command line.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
