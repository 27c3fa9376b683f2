"""Server operators: ``chatserver mkpasswd``, ``[[opers]]``, OPER, KILL, WALLOPS, REHASH,
DIE, user mode +o/+w, opers in WHOIS/WHO/LUSERS, and the channel override.

Every test starts the real server (``python -m ircd``) and talks raw IRC to it.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pexpect
import pytest
from passlib.hash import argon2

from tests.opersupport import (
    ADMIN_PASSWORD,
    OPER_PASSWORD,
    become_oper,
    connect,
    oper_block,
    oper_hash,
    opers_config,
)
from tests.support import ROOT, RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(90)

SERVER = "irc.chatserver.local"


def wait_for_log(srv, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log: {srv.log()[-800:]}")


def still_chats(port: int, a: RawClient) -> None:
    """Another client still reaches ``a``: the server and its users were not affected."""
    probe = connect(port, f"probe{int(time.monotonic() * 1000) % 100000}")
    probe.send(f"PRIVMSG {_nick_of(a)} :are you there")
    a.expect("are you there")
    probe.close()


def _nick_of(client: RawClient) -> str:
    welcome = next(line for line in client.lines if command_of(line) == "001")
    return welcome.split()[2]


# -- chatserver mkpasswd and the config ----------------------------------------------------


def run_cli(args: list[str], stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ircd", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def test_mkpasswd_reads_one_line_from_a_pipe_and_prints_an_argon2id_hash_with_configured_params(
        tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[accounts]\nargon2_time_cost = 3\nargon2_memory_cost = 2048\n")
    done = run_cli(["mkpasswd", "--config", str(cfg)], stdin="s3cret pass\nsecond line\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    hashed = lines[0]
    assert hashed.startswith("$argon2id$v=19$m=2048,t=3,p=1$"), hashed
    assert argon2.verify("s3cret pass", hashed)
    assert not argon2.verify("second line", hashed)
    assert "s3cret" not in done.stderr


def test_mkpasswd_uses_the_default_parameters_without_a_config():
    done = run_cli(["mkpasswd"], stdin="pw\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.verify("pw", done.stdout.strip())


def test_mkpasswd_on_a_terminal_asks_twice_without_echo(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[accounts]\nargon2_time_cost = 1\nargon2_memory_cost = 1024\n")
    child = pexpect.spawn(sys.executable, ["-m", "ircd", "mkpasswd", "--config", str(cfg)],
                          cwd=str(ROOT), encoding="utf-8", timeout=20)
    try:
        child.expect("Password: ")
        child.sendline("typed secret")
        child.expect("Again: ")
        child.sendline("typed secret")
        child.expect(pexpect.EOF)
        out = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, out
    assert "typed secret" not in out            # never echoed
    hashed = out.strip().splitlines()[-1]
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$") and argon2.verify("typed secret", hashed)
    child = pexpect.spawn(sys.executable, ["-m", "ircd", "mkpasswd"], cwd=str(ROOT),
                          encoding="utf-8", timeout=20)
    try:
        child.expect("Password: ")
        child.sendline("one")
        child.expect("Again: ")
        child.sendline("two")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 2
    assert "the passwords differ" in child.before and "$argon2" not in child.before


def test_mkpasswd_refuses_an_empty_password_with_exit_2():
    done = run_cli(["mkpasswd"], stdin="\n")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == "chatserver mkpasswd: empty password"


def test_plain_text_oper_password_is_refused_at_start_with_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[opers]]\nname = "ops"\npassword = "hunter2"\n')
    done = run_cli(["--config", str(cfg), "--data-dir", str(tmp_path / "d")])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "'opers[0].password'" in lines[0] and "plain-text" in lines[0]
    assert "hunter2" not in lines[0]


@pytest.mark.parametrize("table, key", [
    ('name = "ops"\npassword = "HASH"\nclass = "root"\n', "opers[0].class"),
    ('name = "ops"\npassword = "HASH"\nhosts = ["nohost"]\n', "opers[0].hosts"),
    ('name = ""\npassword = "HASH"\n', "opers[0].name"),
    ('name = "ops"\npassword = "HASH"\ncolour = "red"\n', "opers[0].colour"),
])
def test_bad_oper_table_is_a_one_line_config_error(tmp_path, table, key):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[[opers]]\n" + table.replace("HASH", oper_hash("x")))
    done = run_cli(["--config", str(cfg), "--data-dir", str(tmp_path / "d")])
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"'{key}'" in done.stderr


# -- OPER --------------------------------------------------------------------------------


def test_oper_with_the_right_password_gets_mode_o_and_381(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    alice.send(f"OPER ops :{OPER_PASSWORD}")
    mode = alice.expect(lambda line: command_of(line) in ("MODE", "464", "491"))
    assert mode == ":alice!alice@127.0.0.1 MODE alice :+o"
    assert alice.expect_numeric("381") == f":{SERVER} 381 alice :You are now an IRC operator"
    alice.send("MODE alice")
    assert command_of(alice.expect_numeric("221")) == "221"
    assert alice.lines[-1].endswith(" :+o")
    wait_for_log(srv, "is now oper ops (class oper)")


def test_oper_with_a_wrong_password_or_name_gets_464_logged_with_the_address(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    alice.send("OPER ops :wrong password")
    line = alice.expect(lambda x: command_of(x) in ("381", "464", "491"))
    assert line == f":{SERVER} 464 alice :Password incorrect"
    alice.send("OPER nosuchoper :whatever")
    line = alice.expect(lambda x: command_of(x) in ("381", "464", "491"))
    assert line == f":{SERVER} 464 alice :Password incorrect"
    log = wait_for_log(srv, "OPER nosuchoper failed from 127.0.0.1")
    assert "OPER ops failed from 127.0.0.1 (alice, user alice): wrong password" in log
    assert OPER_PASSWORD not in log
    # Still a plain user, and the server and others are unaffected.
    alice.send("MODE alice")
    assert alice.expect_numeric("221").endswith(" :+")
    still_chats(srv.port, alice)


def test_oper_from_a_host_outside_the_masks_gets_the_same_464_as_a_wrong_password(server_factory):
    srv = server_factory(config_text=config_with()
                         + oper_block("remote", "pw", hosts=["admin@10.0.0.*"])
                         + oper_block("local", "pw", hosts=["carol@127.0.0.1"]))
    alice = connect(srv.port, "alice")
    answers = []
    # A host outside the masks (with the right password), a wrong password, a wrong
    # name: one and the same answer, so that nothing tells which oper names exist.
    for line in ("OPER remote pw", "OPER local pw", "OPER nosuch pw"):
        alice.send(line)
        answers.append(alice.expect(lambda x: command_of(x) in ("381", "464", "491")))
    carol = connect(srv.port, "carol")
    carol.send("OPER local wrong")
    answers.append(carol.expect(lambda x: command_of(x) in ("381", "464", "491")).replace(
        " carol ", " alice "))
    assert answers == [f":{SERVER} 464 alice :Password incorrect"] * 4
    log = wait_for_log(srv, "OPER local failed from 127.0.0.1 (carol")
    assert "OPER remote failed from 127.0.0.1 (alice, user alice): host not allowed" in log
    assert "OPER local failed from 127.0.0.1 (alice, user alice): host not allowed" in log
    assert "OPER nosuch failed from 127.0.0.1 (alice, user alice): no such oper" in log
    assert "OPER local failed from 127.0.0.1 (carol, user carol): wrong password" in log
    become_oper(carol, "local", "pw")
    still_chats(srv.port, alice)


def test_oper_failures_count_in_the_login_throttle(server_factory):
    srv = server_factory(config_text=opers_config(limits={
        "login_failures_per_account": 2, "login_delay_max": 0.2, "login_lockout": 300}))
    alice = connect(srv.port, "alice")
    for _ in range(2):
        alice.send("OPER ops :nope")
        assert command_of(alice.expect(lambda x: command_of(x) in ("381", "464"))) == "464"
    alice.send(f"OPER ops :{OPER_PASSWORD}")  # right, but locked out now
    line = alice.expect(lambda x: command_of(x) in ("381", "464"))
    assert command_of(line) == "464" and "Too many failed attempts" in line
    # Another address is not locked out.
    bob = connect(srv.port, "bob", source="127.0.0.3")
    become_oper(bob)
    still_chats(srv.port, alice)


def test_oper_is_shown_in_whois_who_whox_and_lusers(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    bob = connect(srv.port, "bob")
    bob.send("LUSERS")
    assert bob.expect_numeric("252") == f":{SERVER} 252 bob 0 :operator(s) online"
    become_oper(alice)
    root = connect(srv.port, "root")
    become_oper(root, "root", ADMIN_PASSWORD)
    bob.send("WHOIS alice")
    assert bob.expect_numeric("313") == f":{SERVER} 313 bob alice :is an IRC operator"
    bob.expect_numeric("318")
    bob.send("WHOIS root")
    assert bob.expect_numeric("313") == f":{SERVER} 313 bob root :is a server administrator"
    bob.send("WHOIS bob")
    whois = []
    while True:
        line = bob.expect(lambda x: command_of(x).isdigit())
        whois.append(command_of(line))
        if command_of(line) == "318":
            break
    assert "313" not in whois
    bob.send("WHO #general")
    rows = {}
    while True:
        line = bob.expect(lambda x: command_of(x) in ("352", "315"))
        if command_of(line) == "315":
            break
        rows[line.split()[7]] = line.split()[8]
    assert rows == {"alice": "H*@", "bob": "H", "root": "H*"}  # alice opened #general
    bob.send("WHO alice %tnf,42")
    assert bob.expect_numeric("354") == f":{SERVER} 354 bob 42 alice H*"
    bob.send("LUSERS")
    assert bob.expect_numeric("252") == f":{SERVER} 252 bob 2 :operator(s) online"


def test_mode_plus_o_is_ignored_for_non_opers_and_minus_o_deopers(server_factory):
    srv = server_factory(config_text=opers_config())
    bob = connect(srv.port, "bob")
    bob.send("MODE bob +o")
    bob.send("MODE bob")
    assert bob.expect_numeric("221") == f":{SERVER} 221 bob :+"
    bob.send("KILL bob :self")
    assert command_of(bob.expect_numeric("481")) == "481"
    alice = connect(srv.port, "alice")
    become_oper(alice)
    alice.send("MODE alice -o")
    assert alice.expect("MODE alice") == ":alice!alice@127.0.0.1 MODE alice :-o"
    alice.send("KILL bob :bye")
    assert alice.expect_numeric("481").endswith(":Permission Denied- You're not an IRC operator")
    alice.send("LUSERS")
    assert " 252 alice 0 " in alice.expect_numeric("252")
    still_chats(srv.port, bob)


# -- KILL / WALLOPS ------------------------------------------------------------------------


def test_kill_is_seen_by_channel_peers_and_the_victim_gets_kill_and_error(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    bob = connect(srv.port, "bob")
    carol = connect(srv.port, "carol")
    become_oper(alice)
    alice.send("KILL bob :flooding the channel")
    assert bob.expect("KILL") == ":alice!alice@127.0.0.1 KILL bob :flooding the channel"
    error = bob.expect(lambda x: command_of(x) == "ERROR")
    assert error == "ERROR :Closing Link: 127.0.0.1 (Killed (alice (flooding the channel)))"
    assert bob.closed_by_server()
    quit_line = carol.expect("QUIT")
    assert quit_line == ":bob!bob@127.0.0.1 QUIT :Killed (alice (flooding the channel))"
    alice.expect(lambda x: x == quit_line)
    carol.send("WHOIS bob")
    assert command_of(carol.expect(lambda x: command_of(x) in ("401", "311"))) == "401"
    wait_for_log(srv, "KILL bob by alice!alice@127.0.0.1 (oper ops): flooding the channel")
    still_chats(srv.port, carol)


def test_kill_by_a_non_oper_gets_481_and_of_an_unknown_nick_401(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    bob = connect(srv.port, "bob")
    bob.send("KILL alice :no")
    assert bob.expect_numeric("481") == (
        f":{SERVER} 481 bob :Permission Denied- You're not an IRC operator")
    become_oper(alice)
    alice.send("KILL nobody :x")
    assert alice.expect_numeric("401") == f":{SERVER} 401 alice nobody :No such nick/channel"
    alice.send("KILL")
    assert command_of(alice.expect_numeric("461")) == "461"
    still_chats(srv.port, alice)
    still_chats(srv.port, bob)


def test_wallops_reaches_only_users_with_mode_w(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = connect(srv.port, "alice")
    bob = connect(srv.port, "bob")
    carol = connect(srv.port, "carol")
    become_oper(alice)
    for c, nick in ((alice, "alice"), (bob, "bob")):
        c.send(f"MODE {nick} +w")
        c.expect(f"MODE {nick} :+w")
    carol.send("WALLOPS :not an oper")
    assert command_of(carol.expect_numeric("481")) == "481"
    alice.send("WALLOPS :maintenance at noon")
    wallops = ":alice!alice@127.0.0.1 WALLOPS :maintenance at noon"
    assert bob.expect("WALLOPS") == wallops
    assert alice.expect("WALLOPS") == wallops
    # carol (no +w) got nothing: a message sent after the WALLOPS arrives first.
    bob.send("PRIVMSG carol :after the wallops")
    carol.expect("after the wallops")
    assert not any("WALLOPS" in line for line in carol.lines)
    assert not any("not an oper" in line for line in bob.lines + alice.lines)


# -- REHASH / DIE -----------------------------------------------------------------------------


def test_rehash_reloads_the_config_as_sighup_does_and_needs_the_admin_class(server_factory):
    srv = server_factory(config_text=opers_config(server={"motd": "first motd"}))
    root = connect(srv.port, "root")
    ops = connect(srv.port, "ops")
    become_oper(root, "root", ADMIN_PASSWORD)
    become_oper(ops)
    ops.send("REHASH")
    assert ops.expect_numeric("481") == (
        f":{SERVER} 481 ops :Permission Denied- You need the admin oper class")
    srv.config_path.write_text(opers_config(server={"motd": "second motd"}))
    root.send("REHASH")
    assert root.expect_numeric("382") == f":{SERVER} 382 root {srv.config_path.name} :Rehashing"
    assert root.expect("NOTICE root") == f":{SERVER} NOTICE root :REHASH: configuration reloaded"
    wait_for_log(srv, "SIGHUP: configuration reloaded")
    carol = connect(srv.port, "carol")
    assert [x for x in carol.lines if command_of(x) == "372"] == [
        f":{SERVER} 372 carol :- second motd"]
    # An invalid file: the old configuration stays, and REHASH says so.
    srv.config_path.write_text("[server]\nport = -1\n")
    root.send("REHASH")
    root.expect_numeric("382")
    notice = root.expect("NOTICE root")
    assert "config not reloaded, keeping the old one" in notice and "server.port" in notice
    still_chats(srv.port, carol)


def test_die_is_refused_for_class_oper_and_shuts_down_gracefully_for_admin(server_factory):
    srv = server_factory(config_text=opers_config())
    ops = connect(srv.port, "ops")
    become_oper(ops)
    bob = connect(srv.port, "bob")
    bob.send("DIE")
    assert command_of(bob.expect_numeric("481")) == "481"
    ops.send("DIE")
    assert ops.expect_numeric("481").endswith(":Permission Denied- You need the admin oper class")
    assert srv.alive()
    still_chats(srv.port, bob)
    root = connect(srv.port, "root")
    become_oper(root, "root", ADMIN_PASSWORD)
    root.send("DIE")
    assert bob.expect(lambda x: command_of(x) == "ERROR") == "ERROR :Server shutting down"
    assert srv.proc.wait(10) == 0
    log = srv.log()
    assert "DIE by root!root@127.0.0.1 (oper root)" in log and "database closed; bye" in log


# -- channel override ------------------------------------------------------------------------


def test_oper_may_kick_and_set_modes_where_not_channel_operator_and_it_is_logged(server_factory):
    srv = server_factory(config_text=opers_config())
    bob = connect(srv.port, "bob")
    bob.send("JOIN #den")
    bob.expect_numeric("366")
    carol = connect(srv.port, "carol")
    carol.send("JOIN #den")
    carol.expect_numeric("366")
    alice = connect(srv.port, "alice")
    # Not yet an oper: the usual 442 / 482.
    alice.send("KICK #den carol :out")
    assert command_of(alice.expect_numeric("442")) == "442"
    alice.send("MODE #den +m")
    assert command_of(alice.expect_numeric("482")) == "482"
    become_oper(alice)
    alice.send("MODE #den +m")
    assert alice.expect("MODE #den") == ":alice!alice@127.0.0.1 MODE #den +m"
    assert bob.expect("MODE #den") == ":alice!alice@127.0.0.1 MODE #den +m"
    alice.send("KICK #den carol :spam")
    kick = ":alice!alice@127.0.0.1 KICK #den carol :spam"
    assert carol.expect("KICK") == kick
    assert bob.expect("KICK") == kick
    assert alice.expect("KICK") == kick
    log = wait_for_log(srv, "KICK carol :spam")
    assert "oper override: alice!alice@127.0.0.1 (oper ops) on #den: MODE +m" in log
    assert "oper override: alice!alice@127.0.0.1 (oper ops) on #den: KICK carol :spam" in log
    # A channel operator's own actions are no override and are not logged as one.
    bob.send("MODE #den -m")
    bob.expect("MODE #den -m")
    alice.send("JOIN #own")
    alice.expect_numeric("366")
    alice.send("MODE #own +s")
    alice.expect("MODE #own +s")
    time.sleep(0.2)
    assert "on #own" not in srv.log()
    still_chats(srv.port, carol)


def test_oper_answer_carries_the_label_of_the_command_with_labeled_response(server_factory):
    srv = server_factory(config_text=opers_config())
    alice = RawClient(srv.port)
    alice.send("CAP LS 302")
    alice.send("CAP REQ :labeled-response batch")
    alice.expect("ACK")
    alice.send("CAP END")
    alice.register("alice")
    alice.send(f"@label=op1 OPER ops :{OPER_PASSWORD}")
    start = alice.expect(lambda x: "BATCH +" in x)
    assert start.startswith("@label=op1 ") and start.endswith(" labeled-response")
    ref = start.split("BATCH +", 1)[1].split()[0]
    assert alice.expect("MODE alice") == f"@batch={ref} :alice!alice@127.0.0.1 MODE alice :+o"
    assert alice.expect_numeric("381").startswith(f"@batch={ref} :{SERVER} 381 alice ")
    assert alice.expect("BATCH -") == f":{SERVER} BATCH -{ref}"
    alice.send("@label=op2 OPER ops :wrong")
    assert alice.expect_numeric("381") == f"@label=op2 :{SERVER} 381 alice :You are already an IRC operator"
