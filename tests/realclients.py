"""Drivers for real IRC clients (irssi in tmux, WeeChat headless) used by the interop tests.

Each driver runs the real, unmodified client against a server on 127.0.0.1,
types or pipes input into it, and reads what it shows from the client's own
log files (per-channel / per-query logs and the raw protocol log). Every
driver is bounded in time and cleans up after itself: :meth:`stop` (also
called by ``with`` and safe to call twice) ends the client process or tmux
server it started and removes the temporary directories it created. Files in
a caller-supplied ``workdir`` are kept, so that a failing test's ``tmp_path``
still holds the logs.

* :class:`Irssi`: ``irssi`` inside a detached tmux session on a private
  socket, configured by a generated ``config`` file (autoconnect, autolog,
  rawlog); input is typed with ``tmux send-keys``.
* :class:`WeeChat`: ``weechat-headless`` configured with ``-r`` commands;
  input goes through its fifo; the raw protocol buffer (``/server raw``) is
  logged to a file by un-setting its ``no_log`` local variable.

Both expose the same small interface: ``start()``, ``wait_registered()``,
``wait_joined(channel)``, ``say(channel, text)``, ``msg(nick, text)``,
``wait_log(pattern, timeout)``, ``raw_log()``, ``received()``/``sent()``
(raw protocol lines), ``diagnostics()`` and ``stop()``.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support import wait_for_port

HOST = "127.0.0.1"

# Characters that would break the generated configs or command lines; the
# tests only use plain ASCII secrets, so refuse rather than escape.
_UNSAFE = re.compile(r'[\s;"\\$#{}]')


# ERR_NICKLOCKED, ERR_SASLFAIL, ERR_SASLTOOLONG, ERR_SASLABORTED, ERR_SASLALREADY
SASL_ERRORS = frozenset({"902", "904", "905", "906", "907"})


class ClientError(RuntimeError):
    """A real client did not do what was expected in time; the message carries its logs."""


def _check_safe(what: str, value: str) -> str:
    if not value or _UNSAFE.search(value):
        raise ValueError(f"{what} {value!r} must be non-empty, without spaces, quotes, ';', '$', '#', braces or backslashes")
    return value


def _tail(text: str, lines: int) -> str:
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


@dataclass(frozen=True)
class Line:
    """A raw IRC line split into its parts (IRCv3 tags are kept, not unescaped)."""

    tags: dict[str, str]
    source: str  # "" when the line has no prefix
    command: str  # upper-cased
    params: list[str]

    @property
    def nick(self) -> str:
        """The nick of the source (``nick!user@host`` -> ``nick``)."""
        return self.source.split("!", 1)[0]


def parse(line: str) -> Line:
    """Split a raw IRC line (RFC 1459 framing plus IRCv3 message tags)."""
    tags: dict[str, str] = {}
    rest = line
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            key, _, value = item.partition("=")
            tags[key] = value
    rest = rest.lstrip(" ")
    source = ""
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    command = words[0].upper() if words else ""
    params = words[1:] + ([trailing] if trailing is not None else [])
    return Line(tags, source, command, params)


def _command_of(line: str) -> str:
    """The command (or numeric) of a raw IRC line, upper-cased; "" if none."""
    return parse(line).command


def error_lines(received: Iterable[str]) -> list[str]:
    """Lines from the server that report an error: numerics 400-599, the SASL
    failures (902, 904-907), ``ERROR``, and IRCv3 ``FAIL`` standard replies."""
    out = []
    for line in received:
        cmd = _command_of(line)
        if (cmd.isdigit() and len(cmd) == 3 and 400 <= int(cmd) < 600) or cmd in SASL_ERRORS or cmd in ("ERROR", "FAIL"):
            out.append(line)
    return out


class _Client:
    """What both drivers share: work directories, log polling, diagnostics."""

    #: short name used in messages
    kind = "client"

    def __init__(self, port: int, nick: str, workdir: str | Path | None = None, *,
                 password: str | None = None, sasl: tuple[str, str] | None = None,
                 autojoin: Iterable[str] = (), host: str = HOST, lifetime: int = 300) -> None:
        self.port = port
        self.lifetime = lifetime  # the client quits by itself after this many seconds
        self.nick = nick
        self.host = host
        self.password = _check_safe("password", password) if password is not None else None
        if sasl is not None:
            sasl = (_check_safe("SASL username", sasl[0]), _check_safe("SASL password", sasl[1]))
        self.sasl = sasl
        self.autojoin = list(autojoin)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"{self.kind}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir = self.workdir / "logs"
        self.started = False
        self.stopped = False

    # -- to be provided by the drivers -------------------------------------------------
    def log_files(self) -> list[Path]:
        """Every conversation log file the client has written so far."""
        raise NotImplementedError

    def raw_log(self) -> str:
        """The raw protocol log as the client wrote it ("" if none yet)."""
        raise NotImplementedError

    def received(self) -> list[str]:
        """Raw IRC lines the client received from the server, in order."""
        raise NotImplementedError

    def sent(self) -> list[str]:
        """Raw IRC lines the client sent to the server, in order."""
        raise NotImplementedError

    def channel_log(self, channel: str) -> Path:
        """Path of the log file of ``channel`` (or of a query with a nick)."""
        raise NotImplementedError

    def screen(self) -> str:
        """What the client shows / printed outside its logs (for diagnostics)."""
        return ""

    def start(self) -> _Client:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------
    def __enter__(self) -> _Client:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _cleanup_workdir(self) -> None:
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _wait(self, what: str, check: Callable[[], str | None], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise ClientError(f"{self.kind} {self.nick}: timed out after {timeout:.0f}s waiting for {what}\n"
                                  + self.diagnostics())
            self._assert_alive(what)
            time.sleep(0.1)

    def _assert_alive(self, what: str) -> None:
        """Raise :class:`ClientError` if the client process is gone."""

    def read_logs(self, files: Iterable[Path] | None = None) -> dict[Path, str]:
        out = {}
        for path in files if files is not None else self.log_files():
            with contextlib.suppress(OSError):
                out[path] = path.read_text(errors="replace")
        return out

    def wait_log(self, pattern: str, timeout: float = 20.0, channel: str | None = None) -> str:
        """Wait until a line of the conversation logs (only ``channel``'s if given)
        matches the regular expression ``pattern``; return that line."""
        rx = re.compile(pattern)

        def check() -> str | None:
            files = [self.channel_log(channel)] if channel is not None else None
            for text in self.read_logs(files).values():
                for line in text.splitlines():
                    if rx.search(line):
                        return line
            return None

        where = f" in the log of {channel}" if channel else ""
        return self._wait(f"a log line matching {pattern!r}{where}", check, timeout)

    def wait_received(self, pred: Callable[[str], bool] | str, timeout: float = 20.0,
                      what: str | None = None) -> str:
        """Wait until a raw line received from the server satisfies ``pred`` (or contains it)."""
        if isinstance(pred, str):
            needle = pred
            pred = lambda line: needle in line  # noqa: E731
            what = what or f"a received line containing {needle!r}"

        def check() -> str | None:
            for line in self.received():
                if pred(line):
                    return line
            return None

        return self._wait(what or "a received raw line", check, timeout)

    def wait_numeric(self, codes: Iterable[str], timeout: float = 20.0, fail: Iterable[str] = ()) -> str:
        """Wait for a received line whose command is one of ``codes`` (e.g. ``["903"]``);
        raise :class:`ClientError` at once if one in ``fail`` (e.g. ``["904"]``) comes first."""
        want, bad = set(codes), set(fail)

        def check() -> str | None:
            for line in self.received():
                cmd = parse(line).command
                if cmd in bad:
                    raise ClientError(f"{self.kind} {self.nick}: got {line!r} while waiting for "
                                      f"{'/'.join(sorted(want))}\n" + self.diagnostics())
                if cmd in want:
                    return line
            return None

        return self._wait("/".join(sorted(want)), check, timeout)

    def wait_registered(self, timeout: float = 20.0) -> str:
        """Wait for the server's 001 welcome; return that line."""
        return self.wait_numeric(["001"], timeout, fail=["ERROR", "464", "465"])

    def joined_line(self, channel: str) -> str | None:
        """The raw JOIN of ``channel`` for our own nick the server sent, if any."""
        low = channel.lower()
        for line in self.received():
            msg = parse(line)
            if (msg.command == "JOIN" and msg.params and msg.nick.lower() == self.nick.lower()
                    and msg.params[0].lower() == low):
                return line
        return None

    def wait_joined(self, channel: str, timeout: float = 25.0) -> str:
        """Wait until the server has sent our JOIN of ``channel`` and the client
        opened a log for it (so input can go to that channel)."""
        line = self._wait(f"the server's JOIN {channel} for {self.nick}",
                          lambda: self.joined_line(channel), timeout)
        self._wait(f"the log file of {channel}",
                   lambda: "" if self.channel_log(channel).exists() else None, timeout)
        return line

    def server_errors(self) -> list[str]:
        """Error replies (see :func:`error_lines`) the server sent this client."""
        return error_lines(self.received())

    def diagnostics(self, lines: int = 80) -> str:
        """Tails of the raw log, the conversation logs and the screen, for failure messages."""
        parts = [f"--- {self.kind} {self.nick} raw log (last {lines} lines) ---",
                 _tail(self.raw_log(), lines) or "(empty)"]
        for path, text in sorted(self.read_logs().items()):
            parts += [f"--- {path.name} ---", _tail(text, 30)]
        screen = self.screen()
        if screen.strip():
            screen = "\n".join(line for line in screen.splitlines() if line.strip())
            parts += [f"--- {self.kind} screen / output ---", _tail(screen, 40)]
        return "\n".join(parts)


# Opens the raw log of every server connection as soon as it is made, once per
# connection (irssi dumps the backlog kept by rawlog_lines, then appends live).
RAWLOG_SCRIPT = r"""
use strict;
use warnings;
use Irssi;
our $VERSION = '1.0';
our %IRSSI = (name => 'rawlog_open', description => 'interop tests: raw log to a file');
my %opened;
sub open_rawlog {
    my ($server) = @_;
    return if !$server || $opened{$server->{_irssi}}++;
    $server->command('rawlog open @PATH@');
}
Irssi::signal_add_first('server connecting', \&open_rawlog);
Irssi::signal_add_first('server connected', \&open_rawlog);
open_rawlog($_) for Irssi::servers();
# a safety net: quit by itself even if the test process died without stopping us
Irssi::timeout_add_once(@LIFETIME@ * 1000, sub { Irssi::command('quit lifetime over') }, undef);
"""


class Irssi(_Client):
    """irssi running in a detached tmux session on a private socket.

    The generated config autoconnects to ``127.0.0.1:port`` (chatnet ``main``,
    so logs are ``logs/main/<target>.log``), autologs everything and keeps
    5000 raw lines; a small autorun Perl script runs ``/rawlog open
    logs/raw.log`` as soon as the server connection exists (typing it later
    would lose the log of a connection the server closes at once).
    ``cmd_queue_speed_ms`` is irssi's pacing of its own commands (irssi's
    default is 2200 ms, which makes a channel sync take ~10 s; faster here to
    keep the tests short). ``settings`` and ``irc_settings`` add ``/set``
    values to the ``core`` and ``irc/core`` sections of the config, e.g.
    ``irc_settings={"usermode": "+w"}``.
    """

    kind = "irssi"
    binary = "irssi"
    tag = "main"

    def __init__(self, port: int, nick: str, workdir: str | Path | None = None, *,
                 password: str | None = None, sasl: tuple[str, str] | None = None,
                 autojoin: Iterable[str] = (), host: str = HOST, lifetime: int = 300,
                 cmd_queue_speed_ms: int = 300, settings: dict[str, str] | None = None,
                 irc_settings: dict[str, str] | None = None) -> None:
        super().__init__(port, nick, workdir, password=password, sasl=sasl, autojoin=autojoin,
                         host=host, lifetime=lifetime)
        _check_safe("nick", nick)
        self.home = self.workdir / "home"
        self.cmd_queue_speed_ms = cmd_queue_speed_ms
        self.settings = dict(settings or {})
        self.irc_settings = dict(irc_settings or {})
        self.raw_path = self.log_dir / "raw.log"
        # unix socket paths are limited to ~107 bytes: keep the socket short, in /tmp
        self._sock_dir: Path | None = None
        self.socket: Path | None = None
        self._last_screen = ""

    # -- config ------------------------------------------------------------------------
    def config_text(self) -> str:
        """The irssi config file this driver writes."""
        server = [f'address = "{self.host}";', f'chatnet = "{self.tag}";', f'port = "{self.port}";',
                  'use_tls = "no";', 'tls_verify = "no";', 'autoconnect = "yes";']
        if self.password is not None:
            server.append(f'password = "{self.password}";')
        # per-chatnet pacing of irssi's own commands: cmdspeed (ms between), cmdmax (burst)
        chatnet = ['type = "IRC";', f'cmdspeed = "{self.cmd_queue_speed_ms}";', 'cmdmax = "5";']
        if self.sasl is not None:
            chatnet += ['sasl_mechanism = "PLAIN";', f'sasl_username = "{self.sasl[0]}";',
                        f'sasl_password = "{self.sasl[1]}";']
        channels = "".join(f'  {{ name = "{c}"; chatnet = "{self.tag}"; autojoin = "yes"; }},\n'
                           for c in self.autojoin)
        core = {
            "real_name": f"{self.nick} (irssi interop test)",
            "user_name": self.nick,
            "nick": self.nick,
            "settings_autosave": "no",
            "rawlog_lines": "5000",
            "quit_message": "irssi test done",
            **self.settings,
        }
        core_text = "".join(f'    {k} = "{v}";\n' for k, v in core.items())
        irc_core = {"cmd_queue_speed": f"{self.cmd_queue_speed_ms}msec", "cmds_max_at_once": "5", **self.irc_settings}
        irc_core_text = "".join(f'    {k} = "{v}";\n' for k, v in irc_core.items())
        return (
            "servers = (\n  {\n    " + "\n    ".join(server) + "\n  }\n);\n"
            f"chatnets = {{\n  {self.tag} = {{ " + " ".join(chatnet) + " };\n};\n"
            f"channels = (\n{channels});\n"
            "settings = {\n"
            f"  core = {{\n{core_text}  }};\n"
            f'  "irc/core" = {{\n{irc_core_text}  }};\n'
            '  "fe-common/core" = {\n'
            '    autolog = "yes";\n'
            f'    autolog_path = "{self.log_dir}/$tag/$0.log";\n'
            '    autolog_level = "all";\n'
            '    autocreate_query_level = "MSGS DCCMSGS";\n'
            "  };\n"
            '  "fe-text" = { actlist_sort = "refnum"; };\n'
            "};\n"
        )

    # -- tmux --------------------------------------------------------------------------
    def _tmux(self, *args: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess:
        assert self.socket is not None
        return subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def _alive(self) -> bool:
        if self.socket is None:
            return False
        try:
            return self._tmux("has-session", "-t", "irssi", check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _assert_alive(self, what: str) -> None:
        if self.started and not self.stopped and not self._alive():
            raise ClientError(f"irssi {self.nick} exited while waiting for {what}\n" + self.diagnostics())

    def screen(self) -> str:
        if self._alive():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._last_screen = self._tmux("capture-pane", "-p", "-t", "irssi").stdout
        return self._last_screen

    def type(self, text: str) -> None:
        """Type ``text`` literally into irssi's input line and press Enter."""
        self._tmux("send-keys", "-t", "irssi", "-l", text)
        self._tmux("send-keys", "-t", "irssi", "Enter")

    def start(self) -> Irssi:
        """Write the config and the autorun script, start irssi in tmux (it connects at
        once), and wait until it is ready for input."""
        if shutil.which("tmux") is None or shutil.which(self.binary) is None:
            raise ClientError("irssi and tmux must be installed")
        (self.home / ".irssi").mkdir(parents=True, exist_ok=True)
        (self.log_dir / self.tag).mkdir(parents=True, exist_ok=True)
        (self.home / ".irssi" / "config").write_text(self.config_text())
        autorun = self.home / ".irssi" / "scripts" / "autorun"
        autorun.mkdir(parents=True, exist_ok=True)
        if "'" in str(self.raw_path) or "\\" in str(self.raw_path):
            raise ValueError(f"workdir {self.workdir} must not contain quotes or backslashes")
        script = RAWLOG_SCRIPT.replace("@PATH@", str(self.raw_path)).replace("@LIFETIME@", str(int(self.lifetime)))
        (autorun / "rawlog_open.pl").write_text(script)
        self._sock_dir = Path(tempfile.mkdtemp(prefix="irssi-tmux-"))
        self.socket = self._sock_dir / "sock"
        self.started = True
        irssi_dir = self.home / ".irssi"
        command = f"HOME={shlex.quote(str(self.home))} TERM=screen exec irssi --home={shlex.quote(str(irssi_dir))}"
        self._tmux("new-session", "-d", "-s", "irssi", "-x", "200", "-y", "50", command)
        # irssi draws its status bar once it is ready for input
        self._wait("irssi to draw its screen", lambda: "" if "[(status)]" in self.screen() else None, 15.0)
        return self

    def stop(self) -> None:
        """``/quit``, then kill the tmux server; remove the socket dir (and an own workdir)."""
        if self.stopped:
            return
        self.stopped = True
        try:
            if self.socket is not None and self._alive():
                self.screen()  # keep the last screen for diagnostics
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.type("/quit irssi test done")
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline and self._alive():
                    time.sleep(0.1)
            if self.socket is not None:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self._tmux("kill-server", check=False)
        finally:
            if self._sock_dir is not None:
                shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._cleanup_workdir()

    # -- logs --------------------------------------------------------------------------
    def log_files(self) -> list[Path]:
        return sorted((self.log_dir / self.tag).glob("*.log"))

    def channel_log(self, channel: str) -> Path:
        # irssi names the file after the target as the server spelled it
        for path in self.log_files():
            if path.stem.lower() == channel.lower():
                return path
        return self.log_dir / self.tag / f"{channel.lower()}.log"

    def raw_log(self) -> str:
        try:
            return self.raw_path.read_text(errors="replace")
        except OSError:
            return ""

    def received(self) -> list[str]:
        return [line[3:] for line in self.raw_log().splitlines() if line.startswith(">> ")]

    def sent(self) -> list[str]:
        return [line[3:] for line in self.raw_log().splitlines() if line.startswith("<< ")]

    # -- input -------------------------------------------------------------------------
    def say(self, channel: str, text: str) -> None:
        """Switch to ``channel``'s window and type ``text`` like a user would."""
        self.type(f"/window goto {channel}")
        self.type(f"/say {text}" if text.startswith("/") else text)

    def msg(self, target: str, text: str) -> None:
        """``/msg target text``."""
        self.type(f"/msg {target} {text}")

    def command(self, line: str) -> None:
        """Type an irssi command (``/...``)."""
        self.type(line)


class WeeChat(_Client):
    """``weechat-headless`` with its own home directory, fifo and logs.

    Configuration happens on the command line (``-r``); the server is called
    ``main``. Conversation logs are ``logs/irc.main.<target>.weechatlog``
    (lower-cased), the raw protocol log is ``logs/irc.irc_raw.weechatlog``.
    ``capabilities`` is ``irc.server.main.capabilities`` ("*" = everything
    WeeChat supports that the server offers). Anti-flood delays are off.
    """

    kind = "weechat"
    binary = "weechat-headless"

    def __init__(self, port: int, nick: str, workdir: str | Path | None = None, *,
                 password: str | None = None, sasl: tuple[str, str] | None = None,
                 autojoin: Iterable[str] = (), host: str = HOST, lifetime: int = 300,
                 capabilities: str = "*", extra_commands: Iterable[str] = ()) -> None:
        super().__init__(port, nick, workdir, password=password, sasl=sasl, autojoin=autojoin,
                         host=host, lifetime=lifetime)
        _check_safe("nick", nick)
        self.home = self.workdir / "home"
        self.fifo = self.workdir / "fifo"
        self.capabilities = capabilities
        self.extra_commands = list(extra_commands)
        self.out_path = self.workdir / "weechat.out"
        self.proc: subprocess.Popen | None = None

    def commands(self) -> list[str]:
        """The ``-r`` startup commands (joined with ';')."""
        s = "irc.server.main"
        cmds = [
            f'/set fifo.file.path "{self.fifo}"',
            "/set fifo.file.enabled on",
            f'/set logger.file.path "{self.log_dir}"',
            "/set logger.file.flush_delay 0",
            "/set logger.level.irc 9",
            f"/server add main {self.host}/{self.port} -notls",
            f"/set {s}.nicks {self.nick}",
            f"/set {s}.username {self.nick}",
            f'/set {s}.realname "{self.nick} weechat interop test"',
            f'/set {s}.autojoin "{",".join(self.autojoin)}"',
            f'/set {s}.capabilities "{self.capabilities}"',
            f"/set {s}.autoreconnect off",
            f"/set {s}.anti_flood_prio_high 0",
            f"/set {s}.anti_flood_prio_low 0",
            f"/set {s}.sasl_fail continue",
        ]
        if self.password is not None:
            cmds.append(f"/set {s}.password {self.password}")
        if self.sasl is not None:
            cmds += [f"/set {s}.sasl_mechanism plain", f"/set {s}.sasl_username {self.sasl[0]}",
                     f"/set {s}.sasl_password {self.sasl[1]}"]
        cmds += self.extra_commands
        # the raw buffer is marked no_log: open it, drop that mark, and the logger starts
        cmds += ["/server raw", "/command -buffer irc.irc_raw * /buffer set localvar_del_no_log",
                 "/connect main",
                 # a safety net: quit by itself even if the test process died without stopping us
                 f"/wait {int(self.lifetime)}s /quit lifetime over"]
        return cmds

    @staticmethod
    def plugin_installed(name: str) -> bool:
        """True if WeeChat's ``name`` plugin (``name.so``) is installed (Debian's paths)."""
        patterns = [f"/usr/lib/*/weechat/plugins/{name}.so", f"/usr/lib/weechat/plugins/{name}.so",
                    f"/usr/local/lib/weechat/plugins/{name}.so"]
        return any(glob.glob(pattern) for pattern in patterns)

    def start(self) -> WeeChat:
        """Start weechat-headless (it connects at once) and wait for its fifo."""
        if shutil.which(self.binary) is None:
            raise ClientError("weechat-headless must be installed")
        missing = [name for name in ("fifo", "logger", "irc") if not self.plugin_installed(name)]
        if missing:
            raise ClientError(f"WeeChat plugins {missing} not found: apt-get install weechat-plugins "
                              "(only 'recommended' by weechat-headless)")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--dir", str(self.home), "--no-script",
                "--plugins", "irc,logger,fifo,charset", "--run-command", ";".join(self.commands())]
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEECHAT")}
        env.update(TERM="dumb", HOME=str(self.home), LANG="C.UTF-8")
        with open(self.out_path, "wb") as out:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started = True
        self._wait("the fifo", lambda: "" if self.fifo.exists() else None, 15.0)
        return self

    def _assert_alive(self, what: str) -> None:
        if self.proc is not None and not self.stopped and self.proc.poll() is not None:
            raise ClientError(f"weechat {self.nick} exited with {self.proc.returncode} while waiting "
                              f"for {what}\n" + self.diagnostics())

    def send_fifo(self, *lines: str, timeout: float = 5.0) -> None:
        """Write ``lines`` (fifo syntax: ``plugin.buffer *text``) in one go."""
        data = "".join(line + "\n" for line in lines).encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # ENXIO: WeeChat is between two opens of its end
                if exc.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > deadline:
                    raise ClientError(f"cannot open the fifo of weechat {self.nick}: {exc}\n"
                                      + self.diagnostics()) from exc
                self._assert_alive("its fifo")
                time.sleep(0.05)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        time.sleep(0.05)  # let WeeChat drain the pipe before the next writer opens it

    def command(self, line: str) -> None:
        """Run a WeeChat command (``/...``) on the server buffer."""
        self.send_fifo(f"irc.server.main *{line}")

    def say(self, channel: str, text: str) -> None:
        """Send ``text`` to ``channel`` as if typed in its buffer."""
        if text.startswith("/"):
            self.command(f"/msg {channel} {text}")
        else:
            self.send_fifo(f"irc.main.{channel} *{text}")

    def msg(self, target: str, text: str) -> None:
        """``/msg target text``."""
        self.command(f"/msg {target} {text}")

    def stop(self) -> None:
        """``/quit``, wait, then terminate/kill the process group; remove an own workdir."""
        if self.stopped:
            return
        self.stopped = True
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ClientError, OSError):
                    self.send_fifo("core.weechat */quit weechat test done", timeout=1.0)
                try:
                    self.proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    for sig in (signal.SIGTERM, signal.SIGKILL):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(self.proc.pid, sig)
                        try:
                            self.proc.wait(3.0)
                            break
                        except subprocess.TimeoutExpired:
                            continue
        finally:
            self._cleanup_workdir()

    # -- logs --------------------------------------------------------------------------
    def log_files(self) -> list[Path]:
        return sorted(p for p in self.log_dir.glob("irc.*.weechatlog") if p.name != "irc.irc_raw.weechatlog")

    def channel_log(self, channel: str) -> Path:
        return self.log_dir / f"irc.main.{channel.lower()}.weechatlog"

    def raw_log(self) -> str:
        try:
            return (self.log_dir / "irc.irc_raw.weechatlog").read_text(errors="replace")
        except OSError:
            return ""

    def _raw(self, arrow: str) -> list[str]:
        out = []
        for line in self.raw_log().splitlines():
            fields = line.split("\t", 2)
            # "DATE\t--> main\tLINE" (received) / "DATE\t<-- main\tLINE" (sent)
            if len(fields) == 3 and fields[1].split(" ")[0] == arrow:
                out.append(fields[2])
        return out

    def received(self) -> list[str]:
        return self._raw("-->")

    def sent(self) -> list[str]:
        return self._raw("<--")

    def screen(self) -> str:
        parts = []
        for name in ("core.weechat.weechatlog",):
            with contextlib.suppress(OSError):
                parts.append((self.log_dir / name).read_text(errors="replace"))
        with contextlib.suppress(OSError):
            parts.append(self.out_path.read_text(errors="replace"))
        return "\n".join(parts)


class Ngircd:
    """A throw-away ngIRCd on 127.0.0.1 (a reference server to check the drivers against).

    Not used by default: ``REALCLIENTS_SERVER=ngircd pytest -m realclients``
    runs the interop tests against it, which tells a client-side problem from
    a server-side one. ngIRCd does not auto-join, so clients join #general.
    """

    binary = "/usr/sbin/ngircd"

    def __init__(self, workdir: str | Path, port: int) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.conf = self.workdir / "ngircd.conf"
        self.log_path = self.workdir / "ngircd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Ngircd:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "[Global]\nName = irc.ngircd.test\nInfo = interop reference\n"
            f"Listen = {HOST}\nPorts = {self.port}\nPidFile = {self.workdir / 'ngircd.pid'}\n"
            f"MotdPhrase = reference server\nServerUID = {os.getuid()}\nServerGID = {os.getgid()}\n"
            "[Options]\nDNS = no\nIdent = no\nPAM = no\n[Limits]\nMaxNickLength = 30\n"
        )
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([self.binary, "-n", "-f", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
