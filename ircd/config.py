"""Configuration: built-in defaults, overridden by config.toml, overridden by the command line.

Every key is a field of one of the dataclasses below, documented in the
repository's ``config.toml`` next to its default. :func:`load_config` reads a
TOML file with :mod:`tomllib` and rejects unknown keys and wrong types with a
:class:`ConfigError` that names the file and the key.
"""

from __future__ import annotations

import ipaddress
import keyword
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from passlib.hash import argon2

from ircd.protocol.casemap import is_valid_channel
from ircd.storage import BadDatabaseURL, check_database_url, redact_url


class ConfigError(Exception):
    """A configuration problem; ``str(err)`` is a one-line message naming the file and key."""


@dataclass(frozen=True, slots=True)
class ServerSection:
    """``[server]``: identity, listener and per-connection behaviour."""

    name: str = "irc.chatserver.local"
    network: str = "chatserver"
    host: str = "127.0.0.1"
    port: int = 6667
    data_dir: str = "data"
    password: str = ""
    motd: str = (
        "Welcome to chatserver.\n"
        "Everyone is in #general. /join #room for more; /msg NICK for a direct message."
    )
    autojoin: list[str] = field(default_factory=lambda: ["#general"])
    registered_channels: list[str] = field(default_factory=list)
    sendq: int = 1_048_576
    ping_interval: float = 120.0
    ping_timeout: float = 60.0
    registration_timeout: float = 30.0
    nicklen: int = 30
    channellen: int = 64
    topiclen: int = 390
    awaylen: int = 390
    kicklen: int = 390
    maxtargets: int = 4
    max_channels: int = 50
    log_level: str = "info"
    description: str = "chatserver"
    whowas_length: int = 1000
    cloak_hosts: bool = True
    cloak_secret: str = ""
    cloak_suffix: str = "irc"
    cloak_exempt: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1"])


@dataclass(frozen=True, slots=True)
class AccountsSection:
    """``[accounts]``: account registration and argon2id parameters (passlib)."""

    allow_guests: bool = True
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19_456
    argon2_parallelism: int = 1
    hash_workers: int = 2
    registrations_per_ip: int = 3
    registrations_window: float = 3600.0
    max_queued_jobs: int = 500


@dataclass(frozen=True, slots=True)
class SimpleSection:
    """``[simple]``: the course SEND/SEND-OK dialect (see docs/protocol.md)."""

    enabled: bool = False
    port: int = 5378
    max_clients: int = 16
    max_line: int = 8192
    echobot: bool = True
    deliver_channel_messages: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionClass:
    """``[[limits.classes]]``: limits for clients whose address is in ``networks``.

    The first class whose networks contain the client's address applies;
    otherwise the defaults in ``[limits]``. A value of -1 means "as in
    ``[limits]``".
    """

    name: str = "trusted"
    networks: list[str] = field(default_factory=list)
    max_per_ip: int = -1
    flood_burst: int = -1
    flood_rate: float = -1.0
    flood_backlog: int = -1
    sendq: int = -1


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """``[limits]``: connection limits, flood control and login throttling."""

    max_clients: int = 20_000
    max_per_ip: int = 10
    exempt: list[str] = field(default_factory=lambda: ["127.0.0.1/8", "::1"])
    flood_burst: int = 20
    flood_rate: float = 4.0
    flood_backlog: int = 60
    login_failures_per_ip: int = 10
    login_failures_per_account: int = 5
    login_window: float = 600.0
    login_lockout: float = 300.0
    login_delay_max: float = 3.0
    classes: list[ConnectionClass] = field(default_factory=list)
    ipv6_prefix: int = 64


@dataclass(frozen=True, slots=True)
class TLSSection:
    """``[tls]``: a TLS listener beside the plaintext one."""

    enabled: bool = False
    port: int = 6697
    cert: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class WebSocketSection:
    """``[websocket]``: the IRCv3 WebSocket listener and the bundled web client."""

    enabled: bool = False
    port: int = 8097
    host: str = ""
    allowed_origins: list[str] = field(default_factory=list)
    max_message: int = 8191
    tls: bool = False
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistorySection:
    """``[history]``: stored messages for CHATHISTORY and join replay."""

    enabled: bool = True
    max_per_target: int = 1000
    retention_days: float = 30.0
    chathistory_limit: int = 100
    autoreplay_lines: int = 0
    max_targets: int = 10000


@dataclass(frozen=True, slots=True)
class MetricsSection:
    """``[metrics]``: the Prometheus endpoint (``http://host:port/metrics``, :mod:`ircd.metrics`)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9667


@dataclass(frozen=True, slots=True)
class OperBlock:
    """``[[opers]]``: one server operator (RFC 2812 section 3.1.4, OPER).

    ``password`` is an argon2id hash made by ``chatserver mkpasswd`` (a
    plain-text value is refused at start); ``hosts`` are ``user@host`` glob
    masks the oper must connect from (default: anywhere); ``class_`` (TOML
    key ``class``) is ``"oper"`` or ``"admin"`` (admins may also REHASH and DIE).
    """

    name: str = ""
    password: str = ""
    hosts: list[str] = field(default_factory=lambda: ["*@*"])
    class_: str = "oper"


@dataclass(frozen=True, slots=True)
class ServicesSection:
    """``[services]``: the NickServ and ChanServ pseudo-users (ircd/services/)."""

    enabled: bool = True
    max_channels_per_account: int = 10


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    """``[database]``: where accounts, history, server bans and registered channels live.

    ``url`` empty: SQLite in ``server.data_dir``. Otherwise
    ``postgresql://USER[:PW]@HOST[:PORT]/DBNAME`` (:mod:`ircd.storage.postgres`).
    ``timeout`` is in seconds: the most one PostgreSQL operation may take.
    """

    url: str = ""
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class ClusterSection:
    """``[cluster]``: several nodes forming one network over Redis (docs/cluster.md).

    ``url`` empty: a single node (the default). Otherwise ``redis://HOST[:PORT][/DB]``
    (``rediss://`` for TLS), shared by every node of the network. ``node_name``
    names this node in LINKS-style output and in ``node <name> lost`` (empty:
    ``<hostname>:<port>``). ``node_timeout`` is in seconds: a node that has not
    refreshed its liveness key for that long is declared lost.
    """

    url: str = ""
    node_name: str = ""
    node_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration: one attribute per TOML table."""

    server: ServerSection = field(default_factory=ServerSection)
    accounts: AccountsSection = field(default_factory=AccountsSection)
    simple: SimpleSection = field(default_factory=SimpleSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    tls: TLSSection = field(default_factory=TLSSection)
    history: HistorySection = field(default_factory=HistorySection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    opers: list[OperBlock] = field(default_factory=list)
    services: ServicesSection = field(default_factory=ServicesSection)
    websocket: WebSocketSection = field(default_factory=WebSocketSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    cluster: ClusterSection = field(default_factory=ClusterSection)

    def with_overrides(self, section: str, **values: Any) -> Config:
        """Return a copy with ``values`` replaced in ``section`` (``None`` values are skipped)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        return replace(self, **{section: replace(getattr(self, section), **values)})


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(annotation)
        if is_dataclass(item):
            return isinstance(value, list) and all(isinstance(v, dict) for v in value)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    return isinstance(value, annotation)


def _build(cls: type, data: dict[str, Any], path: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for toml_key, value in data.items():
        dotted = f"{path}.{toml_key}" if path else toml_key
        # A TOML key that is a Python keyword ("class") is the field "class_".
        key = toml_key + "_" if keyword.iskeyword(toml_key) else toml_key
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{dotted}'")
        annotation = hints[key]
        if isinstance(annotation, type) and is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{dotted}' must be a table")
            kwargs[key] = _build(annotation, value, dotted, where)
        elif not _type_ok(value, annotation):
            name = annotation.__name__ if isinstance(annotation, type) else str(annotation)
            raise ConfigError(f"{where}: '{dotted}' must be of type {name}, not {type(value).__name__}")
        elif typing.get_origin(annotation) is list and is_dataclass(typing.get_args(annotation)[0]):
            item = typing.get_args(annotation)[0]
            kwargs[key] = [_build(item, v, f"{dotted}[{i}]", where) for i, v in enumerate(value)]
        else:
            kwargs[key] = float(value) if annotation is float else value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], where: str = "<config>") -> Config:
    """Build a :class:`Config` from parsed TOML; raises :class:`ConfigError`."""
    config = _build(Config, data, "", where)
    validate(config, where)
    return config


def load_config(path: str | Path | None) -> Config:
    """Load ``path`` (TOML) over the built-in defaults; ``None`` means defaults only.

    Raises :class:`ConfigError` for an unreadable file, invalid TOML, an
    unknown key, a value of the wrong type or out of range.
    """
    if path is None:
        return Config()
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    return config_from_dict(data, where)


def validate(config: Config, where: str = "<config>") -> None:
    """Check ranges that types alone do not catch; raises :class:`ConfigError`."""
    s = config.server
    checks = [
        ("server.port", 0 <= s.port <= 65535, "must be 0..65535"),
        ("server.sendq", s.sendq >= 4096, "must be at least 4096 bytes"),
        ("server.nicklen", 1 <= s.nicklen <= 64, "must be 1..64"),
        ("server.channellen", 2 <= s.channellen <= 200, "must be 2..200"),
        ("server.maxtargets", s.maxtargets >= 1, "must be at least 1"),
        ("server.ping_interval", s.ping_interval > 0, "must be positive"),
        ("server.ping_timeout", s.ping_timeout > 0, "must be positive"),
        ("server.registration_timeout", s.registration_timeout > 0, "must be positive"),
        ("server.whowas_length", s.whowas_length >= 0, "must be 0 or more"),
        ("server.description", 0 < len(s.description) <= 200
         and not any(c in s.description for c in "\r\n\0"),
         "must be one line of 1..200 characters"),
        ("server.cloak_suffix", bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,30}[A-Za-z0-9])?",
                                                 s.cloak_suffix)),
         "must be a host name suffix: 1..32 letters, digits, dots and hyphens"),
        ("server.log_level", s.log_level.lower() in ("debug", "info", "warning", "error"),
         "must be one of debug, info, warning, error"),
        ("simple.port", 0 <= config.simple.port <= 65535, "must be 0..65535"),
        ("simple.max_clients", config.simple.max_clients >= 1, "must be at least 1"),
        ("simple.max_line", 512 <= config.simple.max_line <= 1_048_576, "must be 512..1048576"),
        ("accounts.argon2_time_cost", config.accounts.argon2_time_cost >= 1, "must be at least 1"),
        ("accounts.argon2_memory_cost", config.accounts.argon2_memory_cost >= 8, "must be at least 8 (KiB)"),
        ("accounts.argon2_parallelism", config.accounts.argon2_parallelism >= 1, "must be at least 1"),
        ("accounts.hash_workers", config.accounts.hash_workers >= 1, "must be at least 1"),
        ("accounts.registrations_per_ip", config.accounts.registrations_per_ip >= 0,
         "must be 0 (no new accounts) or more"),
        ("accounts.registrations_window", config.accounts.registrations_window > 0,
         "must be positive"),
        ("services.max_channels_per_account", config.services.max_channels_per_account >= 0,
         "must be 0 or more"),
        ("accounts.max_queued_jobs", config.accounts.max_queued_jobs >= 1, "must be at least 1"),
        ("database.timeout", 0.5 <= config.database.timeout <= 300, "must be 0.5..300 (seconds)"),
    ]
    lim = config.limits
    checks += [
        ("limits.max_clients", lim.max_clients >= 1, "must be at least 1"),
        ("limits.max_per_ip", lim.max_per_ip >= 1, "must be at least 1"),
        ("limits.flood_burst", lim.flood_burst >= 1, "must be at least 1"),
        ("limits.flood_rate", lim.flood_rate > 0, "must be positive"),
        ("limits.flood_backlog", lim.flood_backlog >= 1, "must be at least 1"),
        ("limits.ipv6_prefix", 1 <= lim.ipv6_prefix <= 128, "must be 1..128"),
        ("tls.port", 0 <= config.tls.port <= 65535, "must be 0..65535"),
        ("history.max_per_target", config.history.max_per_target >= 1, "must be at least 1"),
        ("history.retention_days", config.history.retention_days >= 0, "must be 0 or more"),
        ("history.chathistory_limit", config.history.chathistory_limit >= 1, "must be at least 1"),
        ("history.autoreplay_lines", config.history.autoreplay_lines >= 0, "must be 0 or more"),
        ("history.max_targets", config.history.max_targets >= 1, "must be at least 1"),
        ("metrics.port", 0 <= config.metrics.port <= 65535, "must be 0..65535"),
        ("websocket.port", 0 <= config.websocket.port <= 65535, "must be 0..65535"),
        ("cluster.node_timeout", 1 <= config.cluster.node_timeout <= 3600, "must be 1..3600"),
        ("websocket.max_message", 512 <= config.websocket.max_message <= 1_048_576,
         "must be 512..1048576"),
    ]
    for i, net in enumerate(config.websocket.trusted_proxies):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{where}: 'websocket.trusted_proxies[{i}]' is not an address or "
                              f"network: {net!r}") from None


    for i, name in enumerate(s.registered_channels):
        if not is_valid_channel(name, s.channellen):
            raise ConfigError(f"{where}: 'server.registered_channels[{i}]' is not a channel name: {name!r}")
    for i, net in enumerate(s.cloak_exempt):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{where}: 'server.cloak_exempt[{i}]' is not an address or network: "
                              f"{net!r}") from None
    for i, net in enumerate(lim.exempt):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{where}: 'limits.exempt[{i}]' is not an address or network: {net!r}") from None
    for i, cls in enumerate(lim.classes):
        for net in cls.networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"{where}: 'limits.classes[{i}].networks' has a bad network: {net!r}") from None
    validate_opers(config.opers, where)
    try:
        check_database_url(config.database.url)
    except BadDatabaseURL as exc:
        raise ConfigError(f"{where}: 'database.url' {exc} (got {redact_url(config.database.url)!r})") from None
    if config.cluster.url:
        from ircd.cluster import BadClusterURL, check_cluster_url
        try:
            check_cluster_url(config.cluster.url)
        except BadClusterURL as exc:
            raise ConfigError(f"{where}: 'cluster.url' {exc} "
                              f"(got {redact_url(config.cluster.url)!r})") from None
    if config.cluster.url and not config.database.url:
        raise ConfigError(f"{where}: 'cluster.url' needs a shared 'database.url' (PostgreSQL, "
                          "--database): the nodes of one network must share accounts")
    if " " in config.cluster.node_name:
        raise ConfigError(f"{where}: 'cluster.node_name' must be one word "
                          f"(got {config.cluster.node_name!r})")
    for key, ok, why in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(config, section), name)
            raise ConfigError(f"{where}: '{key}' {why} (got {value!r})")


def is_password_hash(value: str) -> bool:
    """True if ``value`` is an argon2 hash string passlib can read (``$argon2id$v=19$...``)."""
    try:
        return bool(argon2.identify(value)) and argon2.from_string(value) is not None
    except (ValueError, TypeError):
        return False


def validate_opers(opers: list[OperBlock], where: str = "<config>") -> None:
    """Check ``[[opers]]``: a name, a password hash (never plain text), masks, the class.

    Raises :class:`ConfigError` naming ``opers[i].<key>``.
    """
    seen: set[str] = set()
    for i, oper in enumerate(opers):
        key = f"opers[{i}]"
        if not oper.name or " " in oper.name:
            raise ConfigError(f"{where}: '{key}.name' must be a non-empty word")
        if oper.name.lower() in seen:
            raise ConfigError(f"{where}: '{key}.name' repeats the oper name {oper.name!r}")
        seen.add(oper.name.lower())
        if not is_password_hash(oper.password):
            raise ConfigError(f"{where}: '{key}.password' must be an argon2 hash made with "
                              "'chatserver mkpasswd', not a plain-text password")
        for mask in oper.hosts:
            if mask.count("@") != 1 or " " in mask:
                raise ConfigError(f"{where}: '{key}.hosts' has a mask that is not user@host: "
                                  f"{mask!r}")
        if oper.class_ not in ("oper", "admin"):
            raise ConfigError(f"{where}: '{key}.class' must be \"oper\" or \"admin\" "
                              f"(got {oper.class_!r})")
