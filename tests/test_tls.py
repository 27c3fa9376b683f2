"""The TLS listener (``--tls-cert/--tls-key/--tls-port``) on a real server process.

A self-signed certificate for ``localhost`` and 127.0.0.1 is made in a
temporary directory (with the ``cryptography`` package, or the ``openssl``
command), and clients verify the server against it as their only CA:

- a raw ``ssl`` socket registers with a password over TLS;
- the ``irc`` library over TLS and a plaintext client talk to each other;
- a plaintext client on the TLS port is dropped without harm to anyone;
- a missing, unreadable, malformed or mismatched certificate/key stops the
  server with exit code 2 and a one-line error naming the file.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, RawClient, free_port, wait_for_port

pytestmark = pytest.mark.timeout(60)


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 and its key (PEM files)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if not shutil.which("openssl"):
            pytest.skip("neither the cryptography package nor openssl is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(server_factory, cert_files):
    cert, key = cert_files
    tls_port = free_port()
    srv = server_factory(extra_args=["--tls-cert", str(cert), "--tls-key", str(key),
                                     "--tls-port", str(tls_port)])
    wait_for_port(tls_port, srv.proc)
    srv.tls_port = tls_port
    return srv


def client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))   # the test cert is the only CA
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


class TLSClient(RawClient):
    """A :class:`RawClient` over a verified TLS connection."""

    def __init__(self, port: int, cert: Path, hostname: str = "localhost",
                 timeout: float = 10.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = client_context(cert).wrap_socket(raw, server_hostname=hostname)
        self.timeout = timeout
        self.buf = b""
        self.lines = []


def test_register_with_a_password_over_verified_tls(tls_server, cert_files):
    cert, _ = cert_files
    c = TLSClient(tls_server.tls_port, cert)
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    c.register("secure", password="tls-secret")
    c.expect_numeric("900")
    c.send("PING :over-tls")
    c.expect("over-tls")
    c.send("QUIT")
    assert c.closed_by_server()
    c.close()
    assert ", TLS)" in tls_server.log()                       # the server logged a TLS client
    # The certificate really is checked: a wrong name fails verification.
    with pytest.raises(ssl.SSLCertVerificationError):
        TLSClient(tls_server.tls_port, cert, hostname="not-localhost.example")


def test_irc_library_over_tls_talks_with_a_plaintext_client(tls_server, cert_files):
    import irc.client
    import irc.connection

    cert, _ = cert_files
    ctx = client_context(cert)
    factory = irc.connection.Factory(
        wrapper=functools.partial(ctx.wrap_socket, server_hostname="localhost"))
    reactor = irc.client.Reactor()
    seen: dict[str, list[str]] = {"welcome": [], "privmsg": [], "pubmsg": [], "join": []}
    for kind in seen:
        reactor.add_global_handler(
            kind, lambda conn, event, kind=kind: seen[kind].append(
                event.arguments[0] if event.arguments else event.target))
    conn = reactor.server().connect("127.0.0.1", tls_server.tls_port, "tlsuser",
                                    connect_factory=factory)

    def pump(until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            reactor.process_once(0.05)
        assert until(), seen

    try:
        pump(lambda: seen["welcome"] and seen["join"])        # registered, autojoined
        plain = RawClient(tls_server.port)
        plain.register("plain")
        plain.send("PRIVMSG tlsuser :hello from plaintext")
        plain.send("PRIVMSG #general :channel hello from plaintext")
        pump(lambda: "hello from plaintext" in seen["privmsg"]
             and "channel hello from plaintext" in seen["pubmsg"])
        conn.privmsg("plain", "hello back over TLS")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                "hello back over TLS" in line for line in plain.lines):
            reactor.process_once(0.05)
            with contextlib.suppress(TimeoutError):
                plain.readline(0.05)
        assert any(line.startswith(":tlsuser!") and line.endswith("PRIVMSG plain :hello back over TLS")
                   for line in plain.lines), plain.lines[-5:]
        plain.close()
    finally:
        conn.disconnect("bye")


def test_plaintext_on_the_tls_port_is_dropped_and_the_server_keeps_serving(tls_server, cert_files):
    cert, _ = cert_files
    for attempt in range(3):
        s = socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5)
        s.sendall(b"NICK plain\r\nUSER plain 0 * :p\r\n")
        t0 = time.monotonic()
        received = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        s.close()
        assert time.monotonic() - t0 < 5, "the plaintext client was not dropped"
        assert b"001" not in received and b"NOTICE" not in received, (attempt, received)
    assert tls_server.alive()
    # TLS and plaintext clients are served as before, and can talk.
    secure = TLSClient(tls_server.tls_port, cert)
    secure.register("secure")
    plain = RawClient(tls_server.port)
    plain.register("plain")
    plain.send("PRIVMSG secure :after the garbage")
    secure.expect("after the garbage")
    secure.send("QUIT")
    assert secure.closed_by_server()
    secure.close()
    plain.close()


def run_with_tls(tmp_path: Path, cert: str, key: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ircd", str(free_port()), "--host", "127.0.0.1",
         "--data-dir", str(tmp_path / "data"), "--tls-cert", cert, "--tls-key", key,
         "--tls-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=30)


def bad_cert_cases(tmp_path: Path, cert: Path, key: Path) -> dict[str, tuple[str, str, str]]:
    """case -> (cert, key, the file the error must name)."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    other = tmp_path / "other"
    other.mkdir()
    other_key = make_cert(other)[1]
    missing = tmp_path / "missing-cert.pem"
    directory = tmp_path / "a-directory.pem"
    directory.mkdir()
    return {
        "missing cert": (str(missing), str(key), str(missing)),
        "missing key": (str(cert), str(tmp_path / "missing-key.pem"),
                        str(tmp_path / "missing-key.pem")),
        "unreadable cert (a directory)": (str(directory), str(key), str(directory)),
        "malformed cert": (str(garbage), str(key), str(garbage)),
        "key of another cert": (str(cert), str(other_key), str(other_key)),
    }


def test_missing_or_unusable_certificate_exits_2_with_one_line_naming_the_file(
        tmp_path, cert_files):
    cert, key = cert_files
    problems = {}
    for case, (c, k, named) in bad_cert_cases(tmp_path, cert, key).items():
        result = run_with_tls(tmp_path, c, k)
        lines = result.stderr.strip().splitlines()
        if result.returncode != 2 or len(lines) != 1 or named not in lines[0]:
            problems[case] = (result.returncode, result.stderr.strip()[-500:])
    assert problems == {}
    assert not (tmp_path / "data" / "chatserver.sqlite3").exists()   # stopped before the database


def _held(sock: socket.socket, wait: float) -> bool:
    """True if the server keeps ``sock`` open (no close or reset) for ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) != b""   # a TLS server says nothing before the ClientHello
    except TimeoutError:
        return True
    except OSError:
        return False


def test_connections_in_their_handshake_count_against_the_limits_and_dlines(
        server_factory, cert_files):
    """A TLS listener counts a connection from its accept, before any handshake: with
    ``max_per_ip = 3`` the 4th silent connection from one address is closed at once, a
    finished handshake is counted once, and a D-lined address never gets a handshake."""
    from tests.opersupport import become_oper, opers_config

    cert, key = cert_files
    tls_port = free_port()
    srv = server_factory(
        config_text=opers_config(limits={"max_per_ip": 3, "exempt": ["127.0.0.1"]}),
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key), "--tls-port", str(tls_port)])
    wait_for_port(tls_port, srv.proc)
    silent = [socket.create_connection(("127.0.0.1", tls_port), source_address=("127.0.0.2", 0))
              for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", tls_port), source_address=("127.0.0.2", 0))
    assert not _held(extra, 2.0), "a 4th connection in its handshake was not refused"
    assert all(_held(s, 0.2) for s in silent)
    for s in silent:
        s.close()
    time.sleep(0.3)
    users = [TLSClient(tls_port, cert) for _ in range(3)]   # (127.0.0.1 is exempt)
    # A finished handshake is counted once: 3 TLS users from 127.0.0.2, not a 4th.
    ctx = client_context(cert)
    done = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", tls_port), source_address=("127.0.0.2", 0))
        done.append(ctx.wrap_socket(s, server_hostname="localhost"))
    fourth = socket.create_connection(("127.0.0.1", tls_port), source_address=("127.0.0.2", 0))
    assert not _held(fourth, 2.0)
    for s in done:
        s.close()

    oper = users[0]
    oper.register("tlsoper")
    become_oper(oper)
    oper.send("DLINE 127.0.0.3 :no")
    oper.expect("NOTICE")
    banned = socket.create_connection(("127.0.0.1", tls_port), source_address=("127.0.0.3", 0))
    assert not _held(banned, 2.0), "a D-lined address was let into its TLS handshake"
    other = TLSClient(tls_port, cert)
    other.register("stillin")
    other.send("PRIVMSG tlsoper :fine")
    oper.expect("PRIVMSG tlsoper :fine")
    assert srv.alive()
