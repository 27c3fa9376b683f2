"""The course chat dialect (HELLO-FROM / LIST / SEND ...) as a second front end.

The protocol (docs/protocol.md, "The SEND/SEND-OK dialect"; originally the VU
Amsterdam Computer Networks course's chat protocol): one line per message,
ending in LF (CR LF accepted), sent with a bare LF.

A :class:`SimpleSession` is sans-I/O: lines go in through
:meth:`SimpleSession.handle_line`, output leaves through the ``send``
callable. After ``HELLO-FROM`` the session owns an ordinary
:class:`~ircd.state.Client` of kind ``"simple"`` in the core's world, so IRC
users see it in NAMES/WHO/WHOIS/ISON and #general. Commands are translated to
IRC and run through the same dispatcher (``SEND bob hi`` is ``PRIVMSG bob
:hi``); IRC lines written to the user are translated back (a PRIVMSG or
NOTICE becomes ``DELIVERY <sender> <text>``; everything else is dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ircd.commands import dispatch
from ircd.ops.welcome import complete_registration
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_nick
from ircd.protocol.message import MAX_LINE_BODY, Message, MessageParseError, parse_line
from ircd.reply import Reply
from ircd.state import USERLEN, CallbackSession, Client

log = logging.getLogger("ircd.simple")

FORBIDDEN_NAME_CHARS = set(" ,\\!@#$%^&*")
"""Characters refused in HELLO-FROM names (the course's rules, plus backslash)."""

_NOT_DELIVERED = {N.ERR_NOSUCHNICK, N.ERR_NOSUCHCHANNEL, N.ERR_CANNOTSENDTOCHAN}


def _refusal(reply: Reply) -> str:
    """The dialect's answer to a PRIVMSG reply with an error numeric, or "" if delivered."""
    codes = reply.numerics()
    if any(code in _NOT_DELIVERED for code in codes):
        return "BAD-DEST-USER"
    if any(code.startswith("4") for code in codes):
        return "BAD-RQST-BODY"
    return ""


def valid_simple_name(name: str, nicklen: int) -> bool:
    """True if ``name`` may log in with HELLO-FROM: an IRC nick without the course's forbidden characters."""
    return bool(name) and not (set(name) & FORBIDDEN_NAME_CHARS) and is_valid_nick(name, nicklen)


def split_utf8(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes, on character boundaries.

    ``limit`` must be at least 4 (one UTF-8 character). Returns ``[text]`` if it fits.
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return [text]
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # do not cut inside a multi-byte character
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


def message_pieces(core, sender: Client, target: str, text: str) -> list[str]:
    """``text`` as the PRIVMSG texts to send from ``sender`` to ``target`` (nick or channel).

    Whole for another SEND-dialect user or a bot; for IRC (and channels) split
    on UTF-8 boundaries so that each relayed line fits in 512 bytes.
    """
    dest = core.world.find_user(target)
    if dest is not None and dest.kind != "irc":
        return [text]
    budget = MAX_LINE_BODY - len(f":{sender.source} PRIVMSG {target} :".encode())
    return split_utf8(text, max(budget, 16))


def text_messages(data: bytes, commands: tuple[str, ...]) -> Iterator[Message]:
    """The messages among ``data`` (IRC lines, CR LF terminated) whose command is
    in ``commands`` and that carry a source, a target and a text."""
    if not any(c.encode() in data for c in commands):
        return
    for raw in data.split(b"\r\n"):
        if not raw:
            continue
        try:
            msg = parse_line(raw, check_length=False)
        except MessageParseError:
            continue
        if msg.command in commands and len(msg.params) >= 2 and msg.source:
            yield msg


class SimpleSession:
    """One connection speaking the SEND/SEND-OK dialect.

    ``core`` is the :class:`~ircd.core.Server`; ``send(bytes)`` queues output;
    ``close()`` closes the connection; ``ip`` is the peer address. Every
    logged-in session, on either port, counts toward ``simple.max_clients``
    (one more is answered BUSY). The edge (:mod:`ircd.net`) closes a session
    that has not logged in ``server.registration_timeout`` seconds after its
    connection was accepted; a logged-in one is never timed out (the dialect
    has no keep-alive).
    """

    def __init__(self, core, send: Callable[[bytes], None], close: Callable[[], None],
                 ip: str) -> None:
        self.core = core
        self.send = send
        self._close = close
        self.ip = ip
        self.client: Client | None = None
        self.session: CallbackSession | None = None  # the client's, once HELLO-FROM made it
        self.closed = False
        # In a cluster a HELLO-FROM or SEND waits for the log; lines after it wait here.
        self._busy = False
        self._held: list[bytes | None] = []   # None: a line that was too long

    @property
    def busy(self) -> bool:
        """True while a command waits for the cluster's log (a HELLO-FROM's name claim,
        a SEND); the edge does not time out a login that is waiting."""
        return self._busy

    # -- input -----------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        """Handle one received line (bytes, without LF; a trailing CR already removed)."""
        if self.closed:
            return
        if self._busy:
            self._held.append(line)
            return
        text = line.decode("utf-8", "replace").replace("\r", "").replace("\0", "")
        if self.session is not None:
            self.session.last_seen = self.core.clock()
        verb, _, rest = text.partition(" ")
        if verb == "HELLO-FROM":
            self._hello(rest)
        elif verb in ("LIST", "WHO") and not rest.strip():
            self._list()
        elif verb == "SEND":
            self._send_message(rest)
        else:
            self._out("BAD-RQST-HDR")

    def line_too_long(self) -> None:
        """A line over ``simple.max_line`` bytes was dropped."""
        if self._busy:
            self._held.append(None)
            return
        self._out("BAD-RQST-BODY")

    def _done(self) -> None:
        """A command that waited for the cluster's log is answered: run the held lines."""
        self._busy = False
        while self._held and not self._busy and not self.closed:
            line = self._held.pop(0)
            if line is None:
                self.line_too_long()
            else:
                self.handle_line(line)

    def connection_lost(self, reason: str = "Connection closed") -> None:
        """The socket closed: the user leaves (a QUIT for IRC users)."""
        self.closed = True
        if self.client is not None and not self.client.quitting:
            self.core.quit(self.client, reason)

    # -- commands ------------------------------------------------------------

    def _hello(self, name: str) -> None:
        core = self.core
        cfg = core.config
        if self.client is not None or not valid_simple_name(name, cfg.server.nicklen):
            self._out("BAD-RQST-HDR")
            return
        cf = casefold(name)
        if cf in core.world.users or cf in core.account_names:
            self._out("IN-USE")
            return
        online = sum(1 for c in core.world.users.values() if c.kind == "simple")
        if online >= cfg.simple.max_clients:
            self._out("BUSY")
            return
        session = self.session = CallbackSession(self._from_irc, self._closed_by_core)
        client = core.new_client(session, self.ip, kind="simple")
        client.user = name[:USERLEN]
        client.realname = name
        client.set_nick(name)
        reply = Reply(core.name, client)
        complete_registration(core, client, reply)
        if session.pending:  # a cluster: the nick claim is in the log
            self._busy = True

            def claimed() -> None:
                self._hello_done(client, name)
                self._done()

            session.on_resume = claimed
            return
        self._hello_done(client, name)

    def _hello_done(self, client: Client, name: str) -> None:
        if client.quitting:
            return
        if not client.registered:  # lost a race for the name
            self.core.quit(client, "Nickname in use")
            self._out("IN-USE")
            return
        self.client = client
        self._out(f"HELLO {name}")

    def _list(self) -> None:
        if self.client is None:
            self._out("BAD-RQST-HDR")
            return
        names = sorted(u.nick for u in self.core.world.users.values())
        self._out("LIST-OK " + ",".join(names))

    def _send_message(self, rest: str) -> None:
        client = self.client
        if client is None:
            self._out("BAD-RQST-HDR")
            return
        target, _, text = rest.partition(" ")
        if not target or not text.strip():
            self._out("BAD-RQST-BODY")
            return
        if "," in target:
            self._out("BAD-DEST-USER")  # names never contain commas: one recipient per SEND
            return
        core = self.core
        pieces = message_pieces(core, client, target, text)
        if core.log.sequenced:
            self._send_through_log(client, target, pieces)
            return
        for piece in pieces:
            refusal = _refusal(dispatch(core, client, Message("PRIVMSG", [target, piece]),
                                        self.session))
            if refusal:
                self._out(refusal)
                return
        self._out("SEND-OK")

    def _send_through_log(self, client: Client, target: str, pieces: list[str]) -> None:
        """SEND in a cluster: each piece goes through the log in turn; ``SEND-OK``
        once the last one was applied (so delivered on every node), else the refusal."""
        self._busy = True
        cluster = self.core.log

        def send(i: int) -> None:
            if i == len(pieces):
                self._out("SEND-OK")
                self._done()
                return

            def applied(reply: Reply | None) -> None:
                refusal = "BAD-RQST-BODY" if reply is None else _refusal(reply)
                if refusal:
                    self._out(refusal)
                    self._done()
                else:
                    send(i + 1)

            cluster.submit_message(client, Message("PRIVMSG", [target, pieces[i]]), applied)

        send(0)

    # -- output ----------------------------------------------------------------

    def _out(self, line: str) -> None:
        if not self.closed:
            self.send((line + "\n").encode("utf-8"))

    def _from_irc(self, data: bytes) -> None:
        """Translate IRC lines written to this user into DELIVERY lines."""
        if self.closed:
            return
        for msg in text_messages(data, ("PRIVMSG", "NOTICE")):
            target, text = msg.params[0], msg.params[1]
            if target[:1] in "#@+" and not self.core.config.simple.deliver_channel_messages:
                continue
            if text.startswith("\x01"):
                body = text.strip("\x01")
                if not body.startswith("ACTION "):
                    continue  # CTCP queries have no meaning in this dialect
                text = "* " + body[7:]
            sender = (msg.source or "").split("!", 1)[0]
            self._out(f"DELIVERY {sender} {text}")

    def _closed_by_core(self, reason: str) -> None:
        """The core disconnected this user (shutdown, sendq): just close the socket."""
        if not self.closed:
            self.closed = True
            self._close()


class EchoBot:
    """The built-in ``echobot`` user: answers every direct message with the same text.

    It is a registered user of kind ``"bot"`` in #general (so it shows in
    LIST-OK and NAMES) and ignores channel messages. Its answer is sent on the
    next event-loop iteration (``core.scheduler.call_soon``), after the
    sender's own reply (SEND-OK).
    """

    def __init__(self, core, nick: str = "echobot") -> None:
        self.core = core
        # The bot's session is its inbox: the lines delivered to it (no connection).
        client = core.new_client(CallbackSession(self._received), "127.0.0.1",
                                 kind="bot")
        client.user = "echobot"
        client.realname = "Echoes every direct message back"
        client.set_nick(nick)
        client.set_mode("B", True)  # a bot (IRCv3 bot-mode): 335 in WHOIS, B in WHO, the bot tag
        complete_registration(core, client, Reply(core.name, client))
        for chan in client.channels.values():
            chan.members[client] = ""  # a bot is never a channel operator
        self.client = client

    def _received(self, data: bytes) -> None:
        core = self.core
        for msg in text_messages(data, ("PRIVMSG",)):
            if msg.params[0][:1] in "#@+":
                continue
            sender = (msg.source or "").split("!", 1)[0]
            if casefold(sender) == self.client.nick_cf:
                continue
            if core.log.sequenced:
                # Every node has an echobot; the sender's node answers.
                user = core.world.find_user(sender)
                if user is None or not core.is_local(user):
                    continue
            text = msg.params[1]
            self.core.scheduler.call_soon(lambda s=sender, t=text: self._answer(s, t))

    def _answer(self, sender: str, text: str) -> None:
        if self.client.quitting:
            return
        for piece in message_pieces(self.core, self.client, sender, text):
            self.core.run_command(self.client, Message("PRIVMSG", [sender, piece]))
