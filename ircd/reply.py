"""The per-command response buffer.

A handler never writes to its own client directly: it adds lines to a
:class:`Reply`, and the dispatcher sends them as one write when the handler
returns. This is the one place where labeled-response and batch framing can
later wrap a command's whole answer (IRCv3 labeled-response), as Ergo's
``ResponseBuffer`` does. Lines written to *other* clients go straight to them.
"""

from __future__ import annotations

from ircd.protocol.message import fit_line, format_line


def _middle(param: str) -> str:
    """A parameter safe in a middle position: an empty one, or one that starts with
    ``:`` or holds a space (echoed back from bad input), is shown as ``*``."""
    if param and param[0] != ":" and " " not in param:
        return param
    return "*"


class Reply:
    """Lines (``str`` without CR LF) for the client that issued one command.

    ``server_name`` is the source of numerics; ``nick`` the target nick
    (``"*"`` before registration) and is read when each numeric is built.
    """

    __slots__ = ("server_name", "client", "lines")

    def __init__(self, server_name: str, client) -> None:
        self.server_name = server_name
        self.client = client
        self.lines: list[str] = []

    def numeric(self, code: str, *params: str) -> None:
        """Add ``:<server> <code> <nick> <params...> :<last>``.

        The last parameter is always sent as a trailing parameter, as servers
        do for human-readable text (RFC 2812 section 2.3.1). A line over 510
        bytes loses the end of that text (:func:`~ircd.protocol.message.fit_line`).
        """
        *middle, last = (self.client.nick, *params)
        self.lines.append(fit_line(format_line(code, [*map(_middle, middle), last],
                                               source=self.server_name, trailing=True)))

    def send(self, command: str, *params: str, source: str | None = None,
             trailing: bool = False) -> None:
        """Add a non-numeric line; ``source`` defaults to the server name; cut to
        510 bytes like :meth:`numeric`."""
        if params:
            *middle, last = params
            params = (*map(_middle, middle), last)
        self.lines.append(fit_line(
            format_line(command, params, source=source or self.server_name, trailing=trailing)
        ))

    def raw(self, line: str) -> None:
        """Add a ready-made line (without CR LF)."""
        self.lines.append(line)

    def numerics(self) -> list[str]:
        """The numeric codes added so far, in order (used by front ends that translate)."""
        out = []
        for line in self.lines:
            parts = line.split(" ", 2)
            if len(parts) > 1 and parts[1].isdigit():
                out.append(parts[1])
        return out

    def to_bytes(self) -> bytes:
        """Every line, CR LF terminated, UTF-8 encoded, as one buffer."""
        return ("\r\n".join(self.lines) + "\r\n").encode("utf-8") if self.lines else b""
