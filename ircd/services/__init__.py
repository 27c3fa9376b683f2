"""Integrated services, as Ergo has them: the NickServ and ChanServ pseudo-users.

Each service is a registered :class:`~ircd.state.User` of kind
``"service"`` in the nick table (so its nick can never be taken and it shows
in WHOIS, WHO, NAMES and LUSERS like anyone), with ``user`` its own nick and
the server's name as its host. A user talks to it with ``PRIVMSG NickServ
:IDENTIFY pw`` (``/msg NickServ ...``) or with the alias commands ``NS`` and
``CS`` (:mod:`ircd.commands.services`). Every answer is a ``NOTICE`` from the
service in plain words, no numerics (Ergo's style), except the standard
900/901 numerics of logging in and out.

- :mod:`ircd.services.base`: the pseudo-user and the command table of a service;
- :mod:`ircd.services.nickserv`: accounts (REGISTER, IDENTIFY, PASSWORD, INFO, DROP);
- :mod:`ircd.services.chanserv`: channel registration (over :mod:`ircd.chanreg`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ircd.services.chanserv import ChanServ
from ircd.services.nickserv import NickServ


@dataclass(slots=True)
class Services:
    """The server's services; ``core.services`` once :func:`start_services` ran."""

    nickserv: NickServ
    chanserv: ChanServ


def start_services(core) -> Services:
    """Create NickServ and ChanServ in ``core`` (an :class:`ircd.core.Server`) and
    put ChanServ in the registered channels that have GUARD on."""
    services = Services(NickServ(core), ChanServ(core))
    core.services = services
    core.chanreg.chanserv = services.chanserv.client
    for chan in core.chanreg.channels():
        if chan.registration.guard:
            core.chanreg.set_guard(chan, True)
    return services
