"""The documentation matches the code: config.toml, ISUPPORT, the Quickstart."""

from __future__ import annotations

import dataclasses
import re
import typing

from ircd.accounts import AccountStore
from ircd.config import Config, load_config
from ircd.core import ImmediateScheduler, Server
from ircd.history import HistoryStore
from ircd.storage.sqlite import SQLiteAccountRows, SQLiteHistoryDisk
from tests.support import ROOT


def test_config_toml_documents_every_default_exactly():
    documented = load_config(ROOT / "config.toml")
    assert documented == Config()
    text = (ROOT / "config.toml").read_text()
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        if typing.get_origin(hints[section.name]) is list:
            # An array of tables ([[opers]]), empty by default: a commented example.
            (item,) = typing.get_args(hints[section.name])
            for key in dataclasses.fields(item):
                name = key.name.rstrip("_")  # class_ is the TOML key "class"
                assert re.search(rf"^# {name} = ", text, re.M), f"{section.name}.{name} undocumented"
            continue
        for key in dataclasses.fields(type(getattr(Config(), section.name))):
            assert re.search(rf"^{key.name} = ", text, re.M), f"{section.name}.{key.name} undocumented"


def test_protocol_doc_lists_the_isupport_tokens_and_capabilities_the_server_sends(tmp_path):
    history = HistoryStore(SQLiteHistoryDisk(tmp_path / "db"))
    core = Server(Config(), AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1,
                                         memory_cost=1024),
                  ImmediateScheduler(), history=history)
    doc = " ".join((ROOT / "docs" / "protocol.md").read_text().split())
    for cap, value in core.capabilities.items():
        name = cap if value is None else f"{cap}={value}"
        assert f"| `{name}` |" in doc, f"capability {name} missing from docs/protocol.md"
    for key, value in core.isupport.items():
        token = key if value == "" else f"{key}={value}"
        assert token in doc, f"ISUPPORT token {token} missing from docs/protocol.md"


def test_readme_quickstart_has_exactly_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["scripts/serve", "scripts/test"]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
