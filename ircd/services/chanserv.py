"""ChanServ: channel registration by message, in the manner of Ergo's ChanServ.

``/msg ChanServ <command>`` or ``CS <command>``:

- ``REGISTER #chan``: you must be logged in and a channel operator there;
  you become its founder. The channel then keeps its topic, modes, key,
  limit, bans and access list while empty and across restarts (:mod:`ircd.chanreg`);
- ``INFO #chan``: founder, registration time, settings;
- ``OP``/``DEOP``/``VOICE``/``DEVOICE #chan [nick]``: status from ChanServ
  (yourself by default); needs ``op`` access (or founder), or ``voice``
  access to voice yourself;
- ``ACCESS #chan ADD <account> op|voice``, ``ACCESS #chan DEL <account>``
  (founder only), ``ACCESS #chan LIST`` (anyone with access): the accounts
  that get ``+o``/``+v`` on join;
- ``SET #chan TOPICLOCK on|off``, ``SET #chan GUARD on|off`` (founder only);
- ``DROP #chan`` (founder only);
- ``HELP``.

A change (REGISTER, ACCESS ADD/DEL, SET, DROP) is acknowledged only once it
is written to the channel store (it survives ``kill -9``); if the write
fails, the NOTICE says so. An account founds at most ``[services]
max_channels_per_account`` channels (REGISTER beyond: a NOTICE).
"""

from __future__ import annotations

from ircd.chanreg import LEVELS
from ircd.protocol.casemap import casefold
from ircd.reply import Reply, take_label
from ircd.services.base import Service
from ircd.services.nickserv import when
from ircd.state import Channel, Client


class ChanServ(Service):
    """The ChanServ pseudo-user (see the module docstring)."""

    nick = "ChanServ"
    realname = "Channel services"
    replicated = True  # no database calls: every node of a cluster runs each command
    commands = {"REGISTER": "register", "INFO": "info", "OP": "op", "DEOP": "deop",
                "VOICE": "voice", "DEVOICE": "devoice", "ACCESS": "access", "AMODE": "access",
                "SET": "set", "DROP": "drop", "HELP": "help"}
    help_lines = (
        "ChanServ registers channels. Commands (/msg ChanServ <command>, or /cs <command>):",
        "REGISTER #chan: register a channel you are an operator of; you become its founder",
        "INFO #chan: founder, registration time and settings",
        "OP|DEOP|VOICE|DEVOICE #chan [nick]: change status (yourself by default)",
        "ACCESS #chan ADD <account> op|voice, ACCESS #chan DEL <account>, ACCESS #chan LIST",
        "SET #chan TOPICLOCK on|off: only the founder and op accounts may change the topic",
        "SET #chan GUARD on|off: ChanServ stays in the channel",
        "DROP #chan: unregister the channel",
        "HELP: this list",
    )

    # -- helpers ----------------------------------------------------------------

    def _registered(self, args: list[str], reply: Reply, syntax: str) -> Channel | None:
        """The registered channel named by ``args[0]``, or None after a NOTICE."""
        if not args or not args[0].startswith("#"):
            self.notice(reply, f"Syntax: {syntax}")
            return None
        chan = self.core.world.find_channel(args[0])
        if chan is None or chan.registration is None:
            self.notice(reply, f"{args[0]} is not registered.")
            return None
        return chan

    def _ack_when_saved(self, client: Client, reply: Reply, text: str) -> None:
        """Answer ``text`` once the change just made is in the channel store.

        ChanServ acknowledges only what survives a crash: the NOTICE is sent
        after :meth:`ircd.chanreg.ChannelRegistry.when_saved` reports the
        write returned (the client's later lines wait, in order, as for a
        password check). If the write failed, the NOTICE says so: the change
        holds in memory and is retried every second, but is not yet durable.
        """
        core = self.core
        session = reply.session
        state = {"sync": True, "answered": False, "pause": False}

        def saved(error: BaseException | None) -> None:
            state["answered"] = True
            if state["sync"]:  # nothing to wait for: answer in the command's own reply
                self._saved_notice(reply, text, error)
                return
            if state["pause"]:
                session.pending = False
            if client.quitting:
                return
            out = Reply(core.name, client, session)
            self._saved_notice(out, text, error)
            take_label(session, out, core.ids)
            session.write(out.to_bytes())
            if state["pause"]:
                session.resume()

        core.chanreg.when_saved(saved)
        state["sync"] = False
        if not state["answered"] and not core.log.sequenced and not session.pending:
            # The client's later lines wait for the answer, in order (a cluster's
            # log paces its input instead).
            state["pause"] = True
            session.pending = True

    def _saved_notice(self, reply: Reply, text: str, error: BaseException | None) -> None:
        if error is None:
            self.notice(reply, text)
        else:
            self.notice(reply, f"{text} But it could not be saved (database error): it holds "
                               "until a restart and saving is retried.")

    def _is_founder(self, chan: Channel, client: Client, reply: Reply) -> bool:
        if chan.registration.level(client.account) == "founder":
            return True
        if client.account is None:
            self.notice(reply, "You are not logged in.")
        else:
            self.notice(reply, f"Only the founder of {chan.name} may do that.")
        return False

    # -- commands ---------------------------------------------------------------

    def register(self, client: Client, args: list[str], reply: Reply) -> None:
        """REGISTER #chan."""
        if len(args) != 1 or not args[0].startswith("#"):
            self.notice(reply, "Syntax: REGISTER #chan")
            return
        if client.account is None:
            self.notice(reply, "You must be logged in to an account to register a channel.")
            return
        chan = self.core.world.find_channel(args[0])
        if chan is None:
            self.notice(reply, f"{args[0]} does not exist; join it first.")
            return
        if not chan.is_op(client):
            self.notice(reply, f"You must be a channel operator of {chan.name} to register it.")
            return
        reg = chan.registration
        if reg is not None and reg.founder is not None:
            self.notice(reply, f"{chan.name} is already registered to {reg.founder}.")
            return
        limit = self.core.config.services.max_channels_per_account
        if self.core.chanreg.founded_by(client.account) >= limit:
            self.notice(reply, f"You may not register more than {limit} channels; "
                               "DROP one first.")
            return
        if reg is None:
            self.core.chanreg.register(chan, client.account)
        else:
            reg.founder = client.account  # registered by configuration: claimed
        self._ack_when_saved(client, reply, f"{chan.name} is now registered to {client.account}.")

    def info(self, client: Client, args: list[str], reply: Reply) -> None:
        """INFO #chan."""
        chan = self._registered(args, reply, "INFO #chan")
        if chan is None:
            return
        reg = chan.registration
        self.notice(reply, f"Channel: {chan.name}")
        self.notice(reply, f"Founder: {reg.founder or '(none: registered by the server configuration)'}")
        self.notice(reply, f"Registered: {when(reg.registered_at)}")
        self.notice(reply, f"Topic lock: {'on' if reg.topiclock else 'off'}; "
                           f"guard: {'on' if reg.guard else 'off'}")

    def _status(self, client: Client, args: list[str], reply: Reply, letter: str,
                adding: bool, word: str) -> None:
        chan = self._registered(args, reply, f"{word} #chan [nick]")
        if chan is None:
            return
        target = client
        if len(args) > 1:
            found = self.core.world.find_user(args[1])
            if found is None:
                self.notice(reply, f"{args[1]} is not online.")
                return
            target = found
        level = chan.registration.level(client.account)
        allowed = level in ("founder", "op") or (
            letter == "v" and level == "voice" and target is client)
        if client.account is None:
            self.notice(reply, "You are not logged in.")
            return
        if not allowed:
            self.notice(reply, f"You do not have access to {word} in {chan.name}.")
            return
        if target not in chan.members:
            self.notice(reply, f"{target.nick} is not in {chan.name}.")
            return
        own = reply if target is client else None
        if not self.core.chanreg.set_status(chan, target, letter, adding, own):
            self.notice(reply, f"Nothing to change for {target.nick} in {chan.name}.")

    def op(self, client: Client, args: list[str], reply: Reply) -> None:
        """OP #chan [nick]."""
        self._status(client, args, reply, "o", True, "OP")

    def deop(self, client: Client, args: list[str], reply: Reply) -> None:
        """DEOP #chan [nick]."""
        self._status(client, args, reply, "o", False, "DEOP")

    def voice(self, client: Client, args: list[str], reply: Reply) -> None:
        """VOICE #chan [nick]."""
        self._status(client, args, reply, "v", True, "VOICE")

    def devoice(self, client: Client, args: list[str], reply: Reply) -> None:
        """DEVOICE #chan [nick]."""
        self._status(client, args, reply, "v", False, "DEVOICE")

    def access(self, client: Client, args: list[str], reply: Reply) -> None:
        """ACCESS #chan ADD <account> op|voice | DEL <account> | LIST."""
        syntax = "ACCESS #chan ADD <account> op|voice, ACCESS #chan DEL <account>, ACCESS #chan LIST"
        chan = self._registered(args, reply, syntax)
        if chan is None:
            return
        reg = chan.registration
        sub = args[1].upper() if len(args) > 1 else "LIST"
        if sub == "LIST":
            if reg.level(client.account) is None:
                self.notice(reply, f"You have no access to {chan.name}.")
                return
            self.notice(reply, f"Access list of {chan.name}:")
            if reg.founder is not None:
                self.notice(reply, f"{reg.founder} founder")
            for name, level in sorted(reg.access.values(), key=lambda e: casefold(e[0])):
                self.notice(reply, f"{name} {level}")
            self.notice(reply, "End of the access list.")
            return
        if sub not in ("ADD", "DEL") or (sub == "ADD" and len(args) != 4) or (
                sub == "DEL" and len(args) != 3):
            self.notice(reply, f"Syntax: {syntax}")
            return
        if not self._is_founder(chan, client, reply):
            return
        account = args[2]
        cf = casefold(account)
        registered = self.core.account_names.get(cf)
        if sub == "DEL":
            if reg.access.pop(cf, None) is None:
                self.notice(reply, f"{account} is not on the access list of {chan.name}.")
            else:
                self._ack_when_saved(client, reply,
                                     f"{account} removed from the access list of {chan.name}.")
            return
        level = args[3].lower()
        if level not in LEVELS:
            self.notice(reply, "The level must be op or voice.")
            return
        if registered is None:
            self.notice(reply, f"{account} is not a registered account.")
            return
        if reg.level(registered) == "founder":
            self.notice(reply, f"{registered} is the founder of {chan.name}.")
            return
        reg.access[cf] = (registered, level)
        self.core.chanreg.apply_access(chan, registered)
        self._ack_when_saved(client, reply, f"{registered} now has {level} access in {chan.name}.")

    def set(self, client: Client, args: list[str], reply: Reply) -> None:
        """SET #chan TOPICLOCK|GUARD on|off."""
        syntax = "SET #chan TOPICLOCK|GUARD on|off"
        chan = self._registered(args, reply, syntax)
        if chan is None:
            return
        if len(args) != 3 or args[1].upper() not in ("TOPICLOCK", "GUARD") or (
                args[2].lower() not in ("on", "off")):
            self.notice(reply, f"Syntax: {syntax}")
            return
        if not self._is_founder(chan, client, reply):
            return
        setting, on = args[1].upper(), args[2].lower() == "on"
        if setting == "TOPICLOCK":
            chan.registration.topiclock = on
        else:
            self.core.chanreg.set_guard(chan, on)
        self._ack_when_saved(client, reply, f"{setting} of {chan.name} is now {'on' if on else 'off'}.")

    def drop(self, client: Client, args: list[str], reply: Reply) -> None:
        """DROP #chan."""
        chan = self._registered(args, reply, "DROP #chan")
        if chan is None or not self._is_founder(chan, client, reply):
            return
        self.core.chanreg.drop(chan)
        self._ack_when_saved(client, reply, f"{chan.name} is no longer registered.")
