"""What the user typed, parsed into commands. Pure functions: no sockets, no terminal.

:func:`parse_input` maps one input line to one command object:

==========================  =========================================
input                       command
==========================  =========================================
``hello``                   ``Say("hello")`` (to the current room)
``PM`` / ``DM`` / ``EX``    ``Operation("PM")`` ... (alone on a line)
``/msg bob hi``, ``@bob hi`` ``Msg("bob", "hi")``
``/join #r``                ``Join("#r")``
``/part [#r] [reason]``     ``Part(room, reason)``
``/who [#r]``, ``!who``     ``Who(room)``
``/rooms``                  ``Rooms()``
``/me waves``               ``Action("waves")``
``/topic [text]``           ``TopicCmd(text)``
``/help``                   ``Help()``
``/quit [reason]``, ``!quit`` ``Quit(reason)``
``/say text``, ``//text``    ``Say(...)`` (send text that looks like a command)
==========================  =========================================

Malformed commands become :class:`Invalid` with a one-line explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_ROOM = "#general"
CHANNEL_PREFIXES = "#&"
MAX_TEXT_BYTES = 400
"""UTF-8 bytes of text per PRIVMSG: 512 minus CR LF, command, target and the
sender prefix the server adds when relaying (nick!user@host), with room to spare."""


@dataclass(frozen=True)
class Say:
    """A public message to the current room."""

    text: str


@dataclass(frozen=True)
class Operation:
    """One of the assignment's operations typed alone on a line: ``PM``, ``DM`` or ``EX``."""

    name: Literal["PM", "DM", "EX"]


@dataclass(frozen=True)
class Msg:
    """A direct message: ``/msg NICK TEXT`` or ``@NICK TEXT``."""

    target: str
    text: str


@dataclass(frozen=True)
class Join:
    """``/join #room``: join (or switch to) a room; it becomes the current room."""

    room: str


@dataclass(frozen=True)
class Part:
    """``/part [#room] [reason]``: leave ``room`` (None: the current room)."""

    room: str | None
    reason: str | None = None


@dataclass(frozen=True)
class Who:
    """``/who [#room]`` or ``!who``: list the users of ``room`` (None: the current room)."""

    room: str | None


@dataclass(frozen=True)
class Rooms:
    """``/rooms``: list the rooms on the server."""


@dataclass(frozen=True)
class Action:
    """``/me ACTION``: an action (CTCP ACTION) in the current room."""

    text: str


@dataclass(frozen=True)
class TopicCmd:
    """``/topic [TEXT]``: show (``text`` None) or set the current room's topic."""

    text: str | None


@dataclass(frozen=True)
class Help:
    """``/help``."""


@dataclass(frozen=True)
class Quit:
    """``/quit [REASON]``, ``!quit`` or ``EX``: leave."""

    reason: str | None = None


@dataclass(frozen=True)
class Empty:
    """A blank line: nothing to do."""


@dataclass(frozen=True)
class Invalid:
    """A malformed command; ``error`` is a one-line explanation for the user."""

    error: str


Command = (
    Say | Operation | Msg | Join | Part | Who | Rooms | Action | TopicCmd | Help | Quit | Empty | Invalid
)

HELP_TEXT = """\
Type a line to send it to the current room. Operations (the word alone on a line):
  PM                  ask for a message and send it to the current room (server confirms)
  DM                  pick a user from the list of users online and send a direct message
  EX                  leave
Commands:
  /msg NICK TEXT      direct message (short form: @NICK TEXT)
  /join #ROOM         join a room and make it the current room
  /part [#ROOM] [WHY] leave a room (default: the current room)
  /who [#ROOM]        list the users in a room (short form: !who)
  /rooms              list the rooms on the server
  /me ACTION          describe an action in the current room
  /topic [TEXT]       show or set the topic of the current room
  /say TEXT, //TEXT   send TEXT even if it looks like a command
  /help               this help
  /quit [REASON]      leave (also !quit, EX, Ctrl-D, Ctrl-C)"""


def is_channel(name: str) -> bool:
    """True if ``name`` is a room (channel) name rather than a nick."""
    return bool(name) and name[0] in CHANNEL_PREFIXES


def normalize_room(name: str) -> str:
    """``general`` -> ``#general``; names that already start with ``#`` or ``&`` are unchanged."""
    return name if is_channel(name) else "#" + name


def _valid_target(name: str) -> bool:
    return bool(name) and not any(c in name for c in " ,\x00\r\n\x07") and not name.startswith(":")


def parse_input(line: str) -> Command:
    """Parse one line the user typed into a command.

    Leading/trailing whitespace is ignored for command recognition; for plain
    messages only the trailing line break and surrounding spaces are removed.
    The operations ``PM``, ``DM`` and ``EX`` are recognised in any letter case
    when alone on the line. Never raises: malformed input gives :class:`Invalid`.
    """
    text = line.strip("\r\n")
    stripped = text.strip()
    if not stripped:
        return Empty()
    upper = stripped.upper()
    if upper in ("PM", "DM", "EX"):
        return Operation(upper)  # type: ignore[arg-type]
    if stripped.startswith("//"):
        return Say(stripped[1:])
    if stripped.startswith("@") and len(stripped) > 1:
        nick, _, rest = stripped[1:].partition(" ")
        rest = rest.strip()
        if not _valid_target(nick):
            return Invalid(f"not a valid name: {nick!r}")
        if not rest:
            return Invalid(f"usage: @{nick} TEXT")
        return Msg(nick, rest)
    if stripped.startswith("!"):
        word = stripped[1:].split(maxsplit=1)
        name = word[0].lower() if word else ""
        arg = word[1].strip() if len(word) > 1 else None
        if name == "who":
            return Who(normalize_room(arg) if arg else None)
        if name == "quit":
            return Quit(arg)
        return Say(stripped)
    if not stripped.startswith("/"):
        return Say(stripped)
    return _parse_slash(stripped)


def _parse_slash(stripped: str) -> Command:
    parts = stripped[1:].split(maxsplit=1)
    if not parts:
        return Invalid("empty command; type /help")
    name = parts[0].lower()
    arg = parts[1].strip() if len(parts) > 1 else ""
    if name == "msg":
        target, _, text = arg.partition(" ")
        text = text.strip()
        if not target or not text:
            return Invalid("usage: /msg NICK TEXT")
        if not _valid_target(target):
            return Invalid(f"not a valid name: {target!r}")
        return Msg(target, text)
    if name == "join":
        room = arg.split()[0] if arg else ""
        if not room:
            return Invalid("usage: /join #ROOM")
        room = normalize_room(room)
        if not _valid_target(room) or len(room) < 2:
            return Invalid(f"not a valid room name: {room!r}")
        return Join(room)
    if name == "part":
        if not arg:
            return Part(None)
        first, _, rest = arg.partition(" ")
        if is_channel(first):
            return Part(first, rest.strip() or None)
        return Part(None, arg)
    if name == "who":
        return Who(normalize_room(arg.split()[0]) if arg else None)
    if name in ("rooms", "list"):
        return Rooms()
    if name == "me":
        if not arg:
            return Invalid("usage: /me ACTION")
        return Action(arg)
    if name == "topic":
        return TopicCmd(arg or None)
    if name in ("help", "?"):
        return Help()
    if name in ("quit", "exit"):
        return Quit(arg or None)
    if name == "say":
        if not arg:
            return Invalid("usage: /say TEXT")
        return Say(arg)
    return Invalid(f"unknown command /{name}; type /help (use //text to send a line starting with /)")


def resolve_dm_target(answer: str, users: list[str] | tuple[str, ...]) -> str:
    """Turn the answer to the DM "to whom?" question into a nick.

    ``users`` is the numbered list that was shown (1-based). ``answer`` is a
    number from that list or a name (a leading ``@`` is ignored; a name need
    not be in the list -- the server decides whether it is online).

    Raises ``ValueError`` with a one-line explanation for an empty answer, a
    number outside the list, or something that cannot be a nick.
    """
    choice = answer.strip()
    if not choice:
        raise ValueError("no recipient given")
    if choice.isdigit():
        n = int(choice)
        if 1 <= n <= len(users):
            return users[n - 1]
        if not users:
            raise ValueError("nobody is in the list; type a name instead")
        raise ValueError(f"no user number {n}; choose 1-{len(users)} or type a name")
    choice = choice.removeprefix("@")
    if not _valid_target(choice) or is_channel(choice):
        raise ValueError(f"not a valid name: {choice!r}")
    return choice


def numbered(users: list[str] | tuple[str, ...]) -> list[str]:
    """Lines ``"  1. alice"`` ... for the DM user list (1-based, widths aligned)."""
    width = len(str(len(users)))
    return [f"  {i:>{width}}. {nick}" for i, nick in enumerate(users, 1)]


def split_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes each.

    Splits at the last space inside the limit when there is one (the space is
    dropped), otherwise at a character boundary; never splits a character.
    CR, LF and NUL (forbidden in IRC lines) become spaces. An empty text gives
    ``[]``. ``max_bytes`` must be at least 4 (one UTF-8 character).
    """
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4")
    text = text.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    pieces: list[str] = []
    while text:
        data = text.encode("utf-8")
        if len(data) <= max_bytes:
            pieces.append(text)
            break
        cut = data[:max_bytes].decode("utf-8", "ignore")  # drops a partial last character
        space = len(cut) if text[len(cut)] == " " else cut.rfind(" ")
        if space > 0:
            pieces.append(cut[:space])
            text = text[space + 1 :]
        else:
            pieces.append(cut)
            text = text[len(cut) :]
    return [p for p in pieces if p]
