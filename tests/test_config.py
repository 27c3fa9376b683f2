"""Configuration loading (ircd.config) and the command line's exit codes (python -m ircd)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ircd.config import Config, ConfigError, config_from_dict, load_config
from tests.support import FAST_HASH_TOML, ROOT, RawClient, ServerProcess, free_port


def write(tmp_path: Path, text: str | bytes, name: str = "config.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# -- loading -------------------------------------------------------------------


def test_no_file_gives_the_built_in_defaults():
    config = load_config(None)
    assert config == Config()
    assert config.server.port == 6667
    assert config.server.host == "127.0.0.1"
    assert config.server.autojoin == ["#general"]
    assert config.server.ping_interval == 120.0
    assert config.server.ping_timeout == 60.0
    assert config.server.registration_timeout == 30.0
    assert config.accounts.allow_guests is True


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_file_values_override_only_the_keys_given(tmp_path):
    path = write(tmp_path, """
[server]
name = "irc.example.org"
port = 7000
autojoin = ["#a", "#b"]
motd = ""

[accounts]
allow_guests = false
argon2_time_cost = 3
""")
    config = load_config(path)
    assert config.server.name == "irc.example.org"
    assert config.server.port == 7000
    assert config.server.autojoin == ["#a", "#b"]
    assert config.server.motd == ""
    assert config.accounts.allow_guests is False
    assert config.accounts.argon2_time_cost == 3
    # untouched keys keep their defaults
    assert config.server.network == Config().server.network
    assert config.server.nicklen == Config().server.nicklen
    assert config.accounts.argon2_memory_cost == Config().accounts.argon2_memory_cost


def test_integer_is_accepted_for_a_float_key_and_becomes_float(tmp_path):
    config = load_config(write(tmp_path, "[server]\nping_interval = 90\n"))
    assert config.server.ping_interval == 90.0
    assert isinstance(config.server.ping_interval, float)


def test_load_config_accepts_a_str_path(tmp_path):
    path = write(tmp_path, "[server]\nport = 7001\n")
    assert load_config(str(path)).server.port == 7001


def test_repository_config_toml_documents_the_defaults():
    path = ROOT / "config.toml"
    if not path.is_file():
        pytest.skip(f"no {path}")
    assert load_config(path) == Config()


def test_with_overrides_replaces_given_values_and_skips_none():
    config = Config().with_overrides("server", port=7002, host=None)
    assert config.server.port == 7002
    assert config.server.host == Config().server.host
    assert Config().with_overrides("server", port=None) == Config()


# -- errors naming the file and the key ---------------------------------------------


def test_unknown_key_in_a_section_is_an_error_naming_the_dotted_key(tmp_path):
    message = config_error(write(tmp_path, "[server]\nprot = 1\n"))
    assert "server.prot" in message
    assert "unknown" in message


def test_unknown_top_level_table_is_an_error(tmp_path):
    message = config_error(write(tmp_path, "[sever]\nport = 1\n"))
    assert "'sever'" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nport = "6667"\n', "server.port"),
        ("[server]\nport = 6667.0\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nping_interval = true\n", "server.ping_interval"),
        ('[server]\nping_timeout = "60"\n', "server.ping_timeout"),
        ("[server]\nname = 5\n", "server.name"),
        ('[server]\nautojoin = "#general"\n', "server.autojoin"),
        ("[server]\nautojoin = [1, 2]\n", "server.autojoin"),
        ('[accounts]\nallow_guests = "yes"\n', "accounts.allow_guests"),
        ("[accounts]\nallow_guests = 1\n", "accounts.allow_guests"),
        ("server = 5\n", "server"),
    ],
)
def test_wrong_type_is_an_error_naming_the_dotted_key(tmp_path, text, key):
    message = config_error(write(tmp_path, text))
    assert f"'{key}'" in message


def test_missing_file_is_an_error_naming_the_file(tmp_path):
    message = config_error(tmp_path / "nope.toml")
    assert "cannot read" in message


def test_directory_instead_of_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    message = config_error(tmp_path / "dir.toml")
    assert "cannot read" in message


@pytest.mark.parametrize("text", ["[server\nport = 1\n", "[server]\nport = \n", "port = 1 2\n",
                                  "[server]\nport = 1\nport = 2\n"])
def test_invalid_toml_is_an_error_naming_the_file(tmp_path, text):
    message = config_error(write(tmp_path, text))
    assert "invalid TOML" in message


def test_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path):
    # TOML files must be UTF-8 (TOML 1.0, "Spec"); tomllib raises UnicodeDecodeError
    # for anything else, which must become a ConfigError like any other bad file.
    message = config_error(write(tmp_path, b'[server]\nname = "caf\xe9"\n'))
    assert "config.toml" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nport = 65536\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ("[server]\nsendq = 100\n", "server.sendq"),
        ("[server]\nnicklen = 0\n", "server.nicklen"),
        ("[server]\nnicklen = 65\n", "server.nicklen"),
        ("[server]\nchannellen = 1\n", "server.channellen"),
        ("[server]\nmaxtargets = 0\n", "server.maxtargets"),
        ("[server]\nping_interval = 0\n", "server.ping_interval"),
        ("[server]\nping_timeout = -5.0\n", "server.ping_timeout"),
        ("[server]\nregistration_timeout = 0\n", "server.registration_timeout"),
        ('[server]\nlog_level = "verbose"\n', "server.log_level"),
        ("[accounts]\nargon2_time_cost = 0\n", "accounts.argon2_time_cost"),
        ("[accounts]\nargon2_memory_cost = 4\n", "accounts.argon2_memory_cost"),
        ("[accounts]\nargon2_parallelism = 0\n", "accounts.argon2_parallelism"),
        ("[accounts]\nhash_workers = 0\n", "accounts.hash_workers"),
        ("[history]\nmax_targets = 0\n", "history.max_targets"),
    ],
)
def test_out_of_range_value_is_an_error_naming_the_dotted_key(tmp_path, text, key):
    message = config_error(write(tmp_path, text))
    assert f"'{key}'" in message


@pytest.mark.parametrize(
    "text",
    ["[server]\nport = 0\n", "[server]\nport = 65535\n", "[server]\nnicklen = 1\n",
     "[server]\nnicklen = 64\n", "[server]\nsendq = 4096\n", '[server]\nlog_level = "DEBUG"\n',
     "[accounts]\nargon2_memory_cost = 8\n"],
)
def test_boundary_values_are_accepted(tmp_path, text):
    load_config(write(tmp_path, text))


def test_config_from_dict_validates_too():
    assert config_from_dict({"server": {"port": 7003}}).server.port == 7003
    with pytest.raises(ConfigError, match="'server.port'"):
        config_from_dict({"server": {"port": 99999}}, "here")


# -- the command line ------------------------------------------------------------------


def run_cli(args: list[str], cwd: Path, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run ``python -m ircd`` expecting it to exit by itself within ``timeout``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("CHATSERVER_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "ircd", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"python -m ircd {' '.join(args)} did not exit by itself; stderr: {err!r}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_cli_bad_config_exits_2_with_one_line_naming_the_key(tmp_path):
    path = write(tmp_path, "[server]\nport = \"high\"\n", "bad.toml")
    result = run_cli(["--config", str(path), "--data-dir", str(tmp_path / "data")], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "server.port" in lines[0]
    assert "bad.toml" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_cli_unknown_key_exits_2(tmp_path):
    path = write(tmp_path, "[accounts]\nallow_guest = true\n", "bad.toml")
    result = run_cli(["--config", str(path)], tmp_path)
    assert result.returncode == 2
    assert "accounts.allow_guest" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_missing_config_file_exits_2(tmp_path):
    result = run_cli(["--config", str(tmp_path / "absent.toml")], tmp_path)
    assert result.returncode == 2
    assert "absent.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_non_utf8_config_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, b'[server]\nname = "\xff"\n', "latin1.toml")
    result = run_cli(["--config", str(path), "--data-dir", str(tmp_path / "data")], tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert "latin1.toml" in result.stderr


def test_cli_port_out_of_range_exits_2(tmp_path):
    # 65536 + p would wrap around to port p if it reached bind().
    port = 65536 + free_port()
    result = run_cli([str(port), "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data")],
                     tmp_path, timeout=5)
    assert result.returncode == 2
    assert str(port) in result.stderr


def test_cli_port_in_use_exits_1_with_a_clear_message(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli([str(port), "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
                          "--config", str(write(tmp_path, FAST_HASH_TOML))], tmp_path)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_signal_exits_0_and_clients_get_server_shutting_down(tmp_path, sig):
    srv = ServerProcess(tmp_path / "data").start()
    client = RawClient(srv.port)
    try:
        client.register("alice")
        idle = RawClient(srv.port)  # not registered: told too
        idle.send("NICK bob")
        client.send("PING :sync")
        client.expect("PONG")
        assert srv.stop(sig) == 0
        lines = client.drain(quiet=1.0)
        assert "ERROR :Server shutting down" in lines, lines
        assert "ERROR :Server shutting down" in idle.drain(quiet=1.0)
        assert client.readline(timeout=2) is None  # and the connection is closed
    finally:
        client.close()
        if srv.alive():
            srv.stop(signal.SIGKILL)
    assert "Traceback" not in srv.log()
    assert (tmp_path / "data" / "chatserver.sqlite3").exists()
