"""Session events formatted as display lines. Pure: no I/O, no terminal state.

Formats (without colour)::

    alice: hello                    a message in the current room
    [#dev] alice: hello             a message in another room
    [DM] bob: psst                  a direct message to us
    [DM to bob] alice: psst         our own direct message
    * alice waves                   /me in the current room
    * alice joined #general         presence: join
    * bob left #dev (bye)           presence: part
    * bob left (Quit: bye)          presence: quit
    * PM to #general delivered (confirmed by the server)
    ! bob is not online             an error

Colour (ANSI SGR) only when ``color`` is true; text coming from the network
is stripped of control characters and IRC formatting codes either way, so a
message can never move the cursor or change the terminal's colours.
"""

from __future__ import annotations

import re
import zlib
from datetime import datetime

from nativeclient.commands import numbered
from nativeclient.events import (
    Disconnected,
    Event,
    Info,
    LoginInfo,
    Message,
    Presence,
    RoomList,
    SendResult,
    ServerError,
    Topic,
    UserList,
)
from nativeclient.wire import fold

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
MAGENTA = "\x1b[35m"
CYAN = "\x1b[36m"
GREY = "\x1b[90m"
NICK_COLORS = ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
               "\x1b[91m", "\x1b[92m", "\x1b[93m", "\x1b[94m", "\x1b[95m", "\x1b[96m")

_IRC_FORMAT = re.compile(r"\x03(\d{1,2}(,\d{1,2})?)?|\x04[0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
_ESCAPE = re.compile(r"\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.?)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")


def clean(text: str) -> str:
    """Remove terminal escape sequences, IRC formatting codes and control characters.

    Tabs become spaces. The result cannot move the cursor or restyle the terminal.
    """
    return _CONTROL.sub("", _IRC_FORMAT.sub("", _ESCAPE.sub("", text))).replace("\t", " ")


class Renderer:
    """Turns events into display lines.

    ``color``: use ANSI colours; ``timestamps``: prefix ``[HH:MM]`` (the
    server's time when it sends ``server-time``, else local time);
    ``show_own``: show our own messages (the pipe mode hides them, since the
    user already has them).
    """

    def __init__(self, *, color: bool = False, timestamps: bool = False, show_own: bool = True) -> None:
        self.color = color
        self.timestamps = timestamps
        self.show_own = show_own

    # -- styling helpers

    def _c(self, style: str, text: str) -> str:
        return f"{style}{text}{RESET}" if self.color and style else text

    def nick(self, nick: str) -> str:
        """``nick`` in its stable colour (the same nick always gets the same colour)."""
        nick = clean(nick)
        if not self.color:
            return nick
        return self._c(NICK_COLORS[zlib.crc32(fold(nick).encode()) % len(NICK_COLORS)], nick)

    def system(self, text: str) -> str:
        """A ``* ...`` status line."""
        return self._c(GREY, f"* {text}")

    def error(self, text: str) -> str:
        """A ``! ...`` error line."""
        return self._c(RED, f"! {text}")

    def ok(self, text: str) -> str:
        """A ``* ...`` success line."""
        return self._c(GREEN, f"* {text}")

    def _stamp(self, when: datetime | None) -> str:
        if not self.timestamps:
            return ""
        when = when or datetime.now().astimezone()
        return self._c(DIM, f"[{when:%H:%M}]") + " "

    # -- events

    def render(self, event: Event, *, me: str, current_room: str | None) -> list[str]:
        """Display lines for ``event`` (possibly none). ``me``: our nick; ``current_room``: may be None."""
        when = getattr(event, "time", None)
        lines = self._render(event, me=me, current_room=current_room)
        stamp = self._stamp(when) if lines else ""
        return [stamp + line for line in lines]

    def _render(self, event: Event, *, me: str, current_room: str | None) -> list[str]:
        if isinstance(event, Message):
            return self._message(event, current_room)
        if isinstance(event, Presence):
            return [self._presence(event)]
        if isinstance(event, Topic):
            room = clean(event.room)
            if event.setter:
                if event.text:
                    return [self.system(f"{clean(event.setter)} set the topic of {room}: {clean(event.text)}")]
                return [self.system(f"{clean(event.setter)} cleared the topic of {room}")]
            if event.text:
                return [self.system(f"topic of {room}: {clean(event.text)}")]
            return [self.system(f"{room} has no topic")]
        if isinstance(event, UserList):
            names = ", ".join(clean(u) for u in event.users) or "nobody"
            return [self.system(f"users in {clean(event.room)} ({len(event.users)}): {names}")]
        if isinstance(event, RoomList):
            if not event.rooms:
                return [self.system("no rooms")]
            out = [self.system(f"rooms ({len(event.rooms)}):")]
            width = max(len(clean(r.name)) for r in event.rooms)
            for r in event.rooms:
                users = f"{r.users} user" + ("" if r.users == 1 else "s")
                topic = f"  {clean(r.topic)}" if r.topic else ""
                out.append(f"  {clean(r.name):<{width}}  {users}{topic}")
            return out
        if isinstance(event, SendResult):
            return [self.send_result(event)]
        if isinstance(event, Info):
            return [self.system(clean(event.text))]
        if isinstance(event, ServerError):
            return [self.error(clean(event.text))]
        if isinstance(event, Disconnected):
            return []  # the UI ends and prints "disconnected: <reason>"
        return []

    def send_result(self, result: SendResult) -> str:
        """``* PM to #general delivered (confirmed by the server)`` or ``! bob is not online``."""
        target = clean(result.target)
        if not result.ok:
            return self.error(clean(result.reason) or f"could not send to {target}")
        what = {"PM": "PM", "DM": "DM"}.get(result.operation, "message")
        return self.ok(f"{what} to {target} delivered (confirmed by the server)")

    def _message(self, m: Message, current_room: str | None) -> list[str]:
        if m.own and not self.show_own:
            return []
        text = clean(m.text)
        sender = self.nick(m.sender)
        if m.kind == "room":
            here = current_room is not None and fold(m.target) == fold(current_room)
            tag = "" if here else self._c(CYAN, f"[{clean(m.target)}]") + " "
        elif m.own:
            tag = self._c(MAGENTA, f"[DM to {clean(m.target)}]") + " "
        else:
            tag = self._c(MAGENTA + BOLD, "[DM]") + " "
        if m.action:
            return [f"{tag}* {sender} {text}"]
        if m.notice:
            return [f"{tag}-{sender}- {text}"]
        return [f"{tag}{sender}: {text}"]

    def _presence(self, p: Presence) -> str:
        who = "you" if p.own else clean(p.nick)
        why = f" ({clean(p.reason)})" if p.reason else ""
        room = clean(p.room or "")
        if p.kind == "join":
            return self.system(f"{who} joined {room}")
        if p.kind == "part":
            return self.system(f"{who} left {room}{why}")
        if p.kind == "quit":
            return self.system(f"{who} left{why}")
        if p.kind == "kick":
            return self.system(f"{'you were' if p.own else who + ' was'} kicked from {room} by {clean(p.by or '?')}{why}")
        return self.system(f"{who} {'are' if p.own else 'is'} now known as {clean(p.new_nick or '')}")

    # -- fixed texts

    def login_lines(self, info: LoginInfo, username: str) -> list[str]:
        """What to show after login: account status, the room, who is online."""
        out = []
        if info.new_account:
            out.append(self.ok(f"new account {clean(info.account or username)} registered"))
        elif info.account:
            out.append(self.ok(f"logged in as {clean(info.account)}"))
        else:
            out.append(self.ok(f"connected as {clean(info.nick)} (this server has no accounts)"))
        if info.room:
            out.append(self.system(f"you are in {clean(info.room)}"))
            names = ", ".join(clean(u) for u in info.online) or "nobody"
            out.append(self.system(f"online now ({len(info.online)}): {names}"))
        else:
            out.append(self.error("could not join #general; use /join #room"))
        out.append(self.system("type a message, PM, DM, EX or /help"))
        return out

    def user_menu(self, users: list[str] | tuple[str, ...]) -> list[str]:
        """The numbered list of users for ``DM``."""
        if not users:
            return [self.system("nobody else is online right now")]
        return [self.system(f"users online now ({len(users)}):"), *numbered([clean(u) for u in users])]
