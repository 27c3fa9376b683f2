"""A service pseudo-user: a registered client that answers ``PRIVMSG`` with NOTICEs.

A subclass sets ``nick``, ``realname`` and ``commands`` (upper-case word ->
method taking the issuing client, the words after the command and a
:class:`~ircd.reply.Reply` for that client). A direct ``PRIVMSG`` to the
service (from either dialect) is parsed back from the bytes written to it,
as the echobot does, and run at once; the ``NS``/``CS`` commands call
:meth:`Service.run` directly. Channel messages (a guarding ChanServ sits in
channels) and NOTICEs are ignored, so two services never talk to each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ircd.ops import presence
from ircd.reply import Reply
from ircd.simple import text_messages
from ircd.state import CallbackSession, Client

log = logging.getLogger("ircd.services")

Handler = Callable[[Client, list[str], Reply], None]


class Service:
    """One pseudo-user in ``core`` (an :class:`ircd.core.Server`)."""

    nick = "Service"
    realname = "A service"
    commands: dict[str, str] = {}
    """Upper-case command word -> name of the method handling it."""
    help_lines: tuple[str, ...] = ()
    replicated = False
    """Cluster mode: True if the service's commands are deterministic on the replica
    (ChanServ: channel registrations), so every node runs them as it applies the
    message; False if they use the database or carry passwords (NickServ), so a
    message to the service never enters the log: only the sender's node runs it
    (:meth:`ircd.cluster.log.Replication.route`), as a single server does, and what it
    changes (an account, a login) goes through the log as ``acct`` and ``user`` entries."""

    def __init__(self, core) -> None:
        self.core = core
        # The service's session is its inbox: the lines delivered to it (no connection).
        client = core.new_client(CallbackSession(self._received), "127.0.0.1",
                                 kind="service")
        client.user = self.nick
        client.host = core.name
        client.realname = self.realname
        client.set_nick(self.nick)
        client.registered = True
        client.update_source()
        core.world.add_user(client)
        presence.notify_online(core, client)
        self.client = client

    # -- input ----------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        for msg in text_messages(data, ("PRIVMSG",)):
            if msg.params[0][:1] in "#@+":
                continue
            sender = self.core.world.find_user((msg.source or "").split("!", 1)[0])
            if sender is None or sender.source != msg.source or sender.kind == "service":
                continue
            core = self.core
            if core.log.current is not None and not self.replicated:
                # (A message to NickServ runs on its sender's node only and never comes
                # from the log, see ircd.cluster.log Replication.route; should one come,
                # only the sender's node answers, after the entry.)
                if core.is_local(sender):  # every node has this service: the sender's answers
                    core.scheduler.call_soon(
                        lambda s=sender, t=msg.params[1]: self._answer(s, t))
                continue
            self._answer(sender, msg.params[1])

    def _answer(self, sender: Client, text: str) -> None:
        if sender.quitting:
            return
        reply = Reply(self.core.name, sender)
        self.run(sender, text, reply)
        if reply.lines and not sender.quitting:
            reply.session.write(reply.to_bytes())

    def run(self, client: Client, text: str, reply: Reply) -> None:
        """Run the command in ``text`` (``"IDENTIFY pw"``) for ``client``; answers go to ``reply``."""
        words = text.split()
        if not words:
            self.notice(reply, f"Type /msg {self.nick} HELP for the commands.")
            return
        name = self.commands.get(words[0].upper())
        if name is None:
            self.notice(reply, f"Unknown command {words[0][:30]}. Type /msg {self.nick} HELP "
                               "for the commands.")
            return
        handler: Handler = getattr(self, name)
        try:
            handler(client, words[1:], reply)
        except Exception:
            log.exception("%s %s failed for %s", self.nick, words[0].upper(), client.nick)
            self.notice(reply, "Internal error; the command was not completed.")

    # -- output ---------------------------------------------------------------

    def notice(self, reply: Reply, text: str) -> None:
        """Add a NOTICE from the service to ``reply``'s client."""
        reply.raw(f":{self.client.source} NOTICE {reply.client.nick} :{text}")

    def help(self, client: Client, args: list[str], reply: Reply) -> None:
        """HELP: the service's commands, one NOTICE each."""
        for line in self.help_lines:
            self.notice(reply, line)
