"""UTF8ONLY: the answer to a line that is not valid UTF-8 (IRCv3 "utf8-only").

The server advertises ISUPPORT ``UTF8ONLY``, so it must not relay anything
that is not UTF-8. :meth:`ircd.core.Server.handle_line` checks every
received line (:func:`ircd.protocol.message.is_valid_utf8`; ASCII lines cost
one C-level ``isascii``) and hands an invalid one to :func:`refuse_invalid_utf8`
instead of the command table. The line is never run, and never relayed:

- ``NICK``: ``432 ERR_ERRONEUSNICKNAME`` (RFC 2812 section 3.1.2);
- ``JOIN``: ``403 ERR_NOSUCHCHANNEL`` for each invalid channel name, as for
  any other invalid name (nothing on the line is joined);
- ``USER`` (a user name or realname that is not UTF-8): ``FAIL USER
  INVALID_UTF8`` as for any other command (the spec's answer, which
  irctest's ``utf8`` tests accept; ``462`` once registered); registration
  waits for a valid USER;
- ``SETNAME``: ``FAIL SETNAME INVALID_REALNAME`` (IRCv3 setname);
- ``QUIT``: the client still leaves, with the plain reason ``Quit``;
- anything else (PRIVMSG, NOTICE, TAGMSG, AWAY, TOPIC, PART, PASS, ...):
  ``FAIL <command> INVALID_UTF8 :...`` (IRCv3 utf8-only, standard-replies).

Invalid bytes are shown in replies as U+FFFD, so the replies themselves are
valid UTF-8. A ``label`` on the line labels the answer (labeled-response).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ircd.commands.registry import Context, label_reply
from ircd.protocol import numerics as N
from ircd.protocol.message import Message

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.state import Client, Session

_INVALID = re.compile("[\udc80-\udcff]")
"""What ``parse_line(..., errors="surrogateescape")`` makes of each invalid byte."""

_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")

INVALID_UTF8_TEXT = "Message rejected, contains invalid UTF-8"


def _invalid(text: str) -> bool:
    return _INVALID.search(text) is not None


def shown(text: str) -> str:
    """``text`` (str from a surrogateescape decode) with each invalid byte as U+FFFD."""
    if not _invalid(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def refuse_invalid_utf8(server: Server, client: Client, msg: Message,
                        session: Session | None = None) -> Context:
    """The reply to ``msg``, a line that was not valid UTF-8, which is not run.

    ``msg`` comes from ``parse_line(raw, errors="surrogateescape")``. Returns
    the reply (a :class:`~ircd.reply.Context`) for the caller to
    write; for ``QUIT`` the client has already been disconnected.
    """
    reply = Context(server, client, session)
    command = msg.command if _COMMAND.fullmatch(msg.command) else "*"
    params = msg.params
    if command == "NICK" and params and _invalid(params[0]):
        reply.numeric(N.ERR_ERRONEUSNICKNAME, shown(params[0]),
                      "Erroneous nickname (not valid UTF-8)")
    elif command == "JOIN" and params and _invalid(params[0]):
        for name in params[0].split(","):
            if _invalid(name):
                reply.numeric(N.ERR_NOSUCHCHANNEL, shown(name),
                              "No such channel (not valid UTF-8)")
    elif command == "USER" and (client.registered or client.user):
        reply.numeric(N.ERR_ALREADYREGISTERED, "You may not reregister")
    elif command == "SETNAME" and client.registered:
        reply.send("FAIL", "SETNAME", "INVALID_REALNAME", "Realname is not valid UTF-8",
                   trailing=True)
    else:
        reply.send("FAIL", command, "INVALID_UTF8", INVALID_UTF8_TEXT, trailing=True)
    if msg.tags and "labeled-response" in reply.session.caps:
        label = msg.tags.get("label")
        if label:
            label_reply(reply, label, "batch" in reply.session.caps, server.ids)
    if command == "QUIT":
        reply.session.write(reply.to_bytes())
        reply.lines.clear()
        server.quit(client, "Quit", error=f"Closing Link: {client.host} (Quit)")
    return reply
