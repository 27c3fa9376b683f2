"""The two front ends: the interactive terminal and the line-oriented pipe mode.

Both run in the client's one asyncio loop, beside the session's reader task,
and share :class:`Controller`, which carries out parsed commands against a
:class:`~nativeclient.session.ChatSession`. The reader task delivers events
through a sink that prints them at once:

* :class:`TerminalUI` reads with prompt_toolkit inside ``patch_stdout``,
  so lines printed for arriving events appear above the input line without
  disturbing what is being typed -- also while the ``PM``/``DM`` questions
  wait for an answer;
* :class:`PipeUI` reads lines from a pipe or file (no terminal), sends them,
  prints what arrives and, at the end of the input, waits until the server
  has confirmed everything (PING/PONG) before quitting.

Each ``run()`` returns an :class:`Outcome`; the caller sends QUIT and
closes the session (see :mod:`nativeclient.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nativeclient.commands import (
    DEFAULT_ROOM,
    HELP_TEXT,
    Action,
    Command,
    Empty,
    Help,
    Invalid,
    Join,
    Msg,
    Operation,
    Part,
    Quit,
    Rooms,
    Say,
    TopicCmd,
    Who,
    parse_input,
    resolve_dm_target,
)
from nativeclient.events import ConnectionLost, Disconnected, Event
from nativeclient.render import Renderer
from nativeclient.session import ChatSession
from nativeclient.wire import fold

NAMES_TIMEOUT = 5.0
"""Seconds to wait for a fresh user list before ``DM`` falls back to the cached one."""

CONFIRM_TIMEOUT = 15.0
"""Seconds to wait for the server's PONG (end of piped input, pacing of many lines)."""

WINDOW = 8
"""Input lines handled before waiting for a PONG. Paces a long script or a big
paste to the server's flood control (a burst, then a few commands per second)
instead of overrunning its backlog and being disconnected ("Excess Flood")."""


@dataclass(frozen=True)
class Outcome:
    """How a front end ended: ``lost`` (connection lost, ``reason`` says why) or a normal leave.

    For a normal leave ``reason`` is the QUIT message to send.
    """

    reason: str
    lost: bool = False


class _Lost(Exception):
    """Internal: the connection was lost while waiting for input."""


class _Interrupted(Exception):
    """Internal: Ctrl-C (``key == "c"``) or Ctrl-D (``key == "d"``) at a prompt."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def _prompt(session: object, message: object) -> str:
    """``session.prompt_async(message)`` with Ctrl-C/Ctrl-D turned into :class:`_Interrupted`.

    prompt_toolkit reports them as ``KeyboardInterrupt``/``EOFError``; a
    ``KeyboardInterrupt`` escaping an asyncio task would stop the whole event
    loop, so it must not leave the task that runs the prompt.
    """
    try:
        return await session.prompt_async(message)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        raise _Interrupted("c") from None
    except EOFError:
        raise _Interrupted("d") from None


Ask = Callable[[str], Awaitable[str | None]]
Show = Callable[[list[str]], None]


class Controller:
    """Carries out one parsed command; shared by both front ends.

    ``ask(prompt)`` returns the user's answer, or None when the question was
    cancelled (Ctrl-C/Ctrl-D at a question, end of piped input); ``show``
    prints lines.
    """

    def __init__(self, session: ChatSession, renderer: Renderer, ask: Ask, show: Show) -> None:
        self.session = session
        self.renderer = renderer
        self.ask = ask
        self.show = show
        self._unconfirmed = 0

    async def confirm(self) -> None:
        """PING and wait (at most ``CONFIRM_TIMEOUT`` s) for the PONG: all sent so far is processed."""
        self._unconfirmed = 0
        try:
            await asyncio.wait_for(self.session.sync(), CONFIRM_TIMEOUT)
        except TimeoutError:
            self.show([self.renderer.error(f"no confirmation from the server within {CONFIRM_TIMEOUT:g} s")])

    async def pace(self) -> None:
        """Call after each handled line: every ``WINDOW`` lines, wait for the server to catch up."""
        self._unconfirmed += 1
        if self._unconfirmed >= WINDOW:
            await self.confirm()

    async def handle(self, cmd: Command) -> str | None:
        """Carry out ``cmd``. Returns the QUIT reason when the user wants to leave, else None.

        Errors the user can fix are shown as ``! ...`` lines; ``ConnectionLost``
        propagates.
        """
        try:
            return await self._handle(cmd)
        except ValueError as exc:
            self.show([self.renderer.error(str(exc))])
            return None

    async def _handle(self, cmd: Command) -> str | None:
        s = self.session
        r = self.renderer
        match cmd:
            case Empty():
                return None
            case Invalid(error=error):
                self.show([r.error(error)])
            case Say(text=text):
                s.send_message(self._room(), text)
            case Operation(name="EX"):
                return "leaving"
            case Operation(name="PM"):
                await self._pm()
            case Operation(name="DM"):
                await self._dm()
            case Msg(target=target, text=text):
                s.send_message(target, text, operation="DM")
            case Join(room=room):
                # wait for the server, so that the next line already goes to the new room
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.join(room), NAMES_TIMEOUT)
            case Part(room=room, reason=reason):
                s.part(room, reason)
            case Who(room=room):
                s.request_who(room or self._room())
            case Rooms():
                s.request_rooms()
            case Action(text=text):
                s.send_message(self._room(), text, action=True)
            case TopicCmd(text=None):
                s.request_topic(self._room())
            case TopicCmd(text=text):
                s.set_topic(text, self._room())  # type: ignore[arg-type]
            case Help():
                self.show(HELP_TEXT.splitlines())
            case Quit(reason=reason):
                return reason or "leaving"
        return None

    def _room(self) -> str:
        room = self.session.current_room
        if not room:
            raise ValueError("you are not in any room; /join #room first")
        return room

    async def _pm(self) -> None:
        room = self._room()
        text = await self.ask(f"message to {room}: ")
        if text is None or not text.strip():
            self.show([self.renderer.system("PM cancelled")])
            return
        self.session.send_message(room, text.strip(), operation="PM", confirm=True)

    async def online_now(self) -> list[str]:
        """Users online right now (fresh NAMES of #general, falling back to the cached lists)."""
        s = self.session
        try:
            fresh = await asyncio.wait_for(s.request_names(DEFAULT_ROOM), NAMES_TIMEOUT)
        except TimeoutError:
            fresh = ()
        users = {fold(u): u for u in (*fresh, *s.online_users())}
        users.pop(fold(s.nick), None)
        return sorted(users.values(), key=fold)

    async def _dm(self) -> None:
        users = await self.online_now()
        self.show(self.renderer.user_menu(users))
        answer = await self.ask("to (name or number): ")
        if answer is None or not answer.strip():
            self.show([self.renderer.system("DM cancelled")])
            return
        nick = resolve_dm_target(answer, users)
        text = await self.ask(f"message to {nick}: ")
        if text is None or not text.strip():
            self.show([self.renderer.system("DM cancelled")])
            return
        self.session.send_message(nick, text.strip(), operation="DM", confirm=True)


def _printing_sink(session: ChatSession, renderer: Renderer, write: Callable[[str], None],
                   on_lost: Callable[[str], None]) -> Callable[[Event], None]:
    def sink(event: Event) -> None:
        if isinstance(event, Disconnected):
            on_lost(event.reason)
            return
        lines = renderer.render(event, me=session.nick, current_room=session.current_room)
        if lines:
            write("\n".join(lines))

    return sink


class _LostSignal:
    """A future in the UI loop that is set when the connection is lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[str] = loop.create_future()

    def set(self, reason: str) -> None:
        if not self.future.done():
            self.future.set_result(reason)

    async def race(self, awaitable: Awaitable) -> object:
        """Await ``awaitable``; raise :class:`_Lost` if the connection is lost first."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task, self.future}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _Lost(self.future.result())


class TerminalUI:
    """The interactive front end (prompt_toolkit); see the module docstring."""

    def __init__(self, session: ChatSession, renderer: Renderer) -> None:
        self.session = session
        self.renderer = renderer
    def _write(self, text: str) -> None:
        # Inside patch_stdout, sys.stdout is prompt_toolkit's proxy that prints
        # above the input line. One write per line (print() makes two).
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass

    async def run(self) -> Outcome:
        """Read and carry out commands until the user leaves or the connection is lost."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory
        from prompt_toolkit.output import ColorDepth
        from prompt_toolkit.patch_stdout import patch_stdout

        lost = _LostSignal(asyncio.get_running_loop())
        depth = None if self.renderer.color else ColorDepth.MONOCHROME
        main: PromptSession = PromptSession(history=InMemoryHistory(), color_depth=depth)
        sub: PromptSession = PromptSession(color_depth=depth)

        async def ask(prompt: str) -> str | None:
            try:
                return await lost.race(_prompt(sub, prompt))  # type: ignore[return-value]
            except _Interrupted:
                return None

        def show(lines: list[str]) -> None:
            self._write("\n".join(lines))

        controller = Controller(self.session, self.renderer, ask, show)
        with patch_stdout(raw=True):
            self.session.attach(_printing_sink(self.session, self.renderer, self._write, lost.set))
            if self.session.disconnected.done() and not lost.future.done():
                lost.set(self.session.disconnected.result())
            try:
                def prompt_text() -> str:
                    # evaluated at each redraw: follows room switches the server causes
                    return f"{self.session.current_room or '(no room)'}> "

                while True:
                    try:
                        line = await lost.race(_prompt(main, prompt_text))
                    except _Interrupted:
                        return Outcome("leaving")
                    # a paste of several lines is handled line by line
                    for part in str(line).splitlines() or [""]:
                        cmd = parse_input(part)
                        reason = await lost.race(controller.handle(cmd))
                        if reason is not None:
                            return Outcome(str(reason))
                        if not isinstance(cmd, Empty):
                            await lost.race(controller.pace())
            except _Lost as exc:
                return Outcome(str(exc), lost=True)
            except ConnectionLost as exc:
                await asyncio.sleep(0.2)  # let the reader task report the real reason
                reason = lost.future.result() if lost.future.done() else exc.message
                return Outcome(reason, lost=True)


class _StdinLines:
    """Async line reader on a file descriptor (pipe, file, /dev/null); UTF-8, lenient."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    async def _chunk(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(self.fd, wake)
        except (OSError, ValueError, NotImplementedError):
            return os.read(self.fd, 65536)  # regular files cannot be polled; they never block
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)
        return os.read(self.fd, 65536)

    async def readline(self) -> str | None:
        """The next line without its line break, or None at the end of input."""
        while b"\n" not in self.buf and not self.eof:
            chunk = await self._chunk()
            if chunk:
                self.buf += chunk
            else:
                self.eof = True
        if b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
        elif self.buf:
            raw, self.buf = self.buf, b""
        else:
            return None
        return raw.rstrip(b"\r").decode("utf-8", "replace")


class PipeUI:
    """The scriptable front end: lines from ``stdin_fd``, output to ``stdout`` (see module doc)."""

    def __init__(self, session: ChatSession, renderer: Renderer, stdin_fd: int | None = None) -> None:
        self.session = session
        self.renderer = renderer
        self.stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    def _write(self, text: str) -> None:
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            # stdout closed (e.g. piped into head): keep going quietly
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)

    async def run(self) -> Outcome:
        """Send each input line; at the end of input wait for the server's confirmation."""
        lost = _LostSignal(asyncio.get_running_loop())
        lines = _StdinLines(self.stdin_fd)

        async def ask(prompt: str) -> str | None:
            return await lines.readline()

        def show(out: list[str]) -> None:
            self._write("\n".join(out))

        controller = Controller(self.session, self.renderer, ask, show)
        self.session.attach(_printing_sink(self.session, self.renderer, self._write, lost.set))
        if self.session.disconnected.done():
            lost.set(self.session.disconnected.result())
        reason = "end of input"
        try:
            while True:
                line = await lost.race(lines.readline())
                if line is None:
                    break
                quit_reason = await lost.race(controller.handle(parse_input(str(line))))
                if quit_reason is not None:
                    reason = str(quit_reason)
                    break
                await lost.race(controller.pace())
            await lost.race(controller.confirm())
            return Outcome(reason)
        except _Lost as exc:
            return Outcome(str(exc), lost=True)
        except ConnectionLost as exc:
            await asyncio.sleep(0.2)
            return Outcome(lost.future.result() if lost.future.done() else exc.message, lost=True)
