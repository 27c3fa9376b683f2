"""``contrib/chatserver.service``: a hardened systemd unit that systemd accepts.

``systemd-analyze verify`` checks the unit (with ExecStart pointed at this
checkout's ``chatserver``, since the unit names the installed path); it
reports unknown keys and bad values as warnings on stderr, so the test wants
an empty stderr as well as exit code 0. The command line is also parsed by
chatserver's own argument parser.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ircd.cli import build_parser
from tests.support import ROOT

UNIT = ROOT / "contrib" / "chatserver.service"
INSTALLED = "/opt/chatserver/bin/chatserver"


def settings(text: str) -> dict[str, list[str]]:
    """``key -> [values]`` of a unit file (comments and section headers dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_hardened_as_documented():
    unit = settings(UNIT.read_text())
    for key, value in {
        "DynamicUser": "yes", "StateDirectory": "chatserver", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
    }.items():
        assert unit.get(key) == [value], (key, unit.get(key))
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]     # SIGHUP reloads the config


def test_exec_start_is_a_valid_chatserver_command_line_writing_only_to_the_state_directory():
    (exec_start,) = settings(UNIT.read_text())["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/chatserver/config.toml"
    assert args.data_dir == "%S/chatserver"     # systemd's specifier for /var/lib/chatserver


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_accepts_the_unit_without_warnings(tmp_path):
    chatserver = Path(sys.executable).parent / "chatserver"
    assert chatserver.exists(), "chatserver is installed in the test environment"
    unit = tmp_path / "chatserver.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(chatserver)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    # The check above can fail: a misspelt key is reported.
    chatserver = Path(sys.executable).parent / "chatserver"
    unit = tmp_path / "chatserver.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(chatserver))
                    .replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert "bogus" in result.stderr
