"""Server operators and server bans: OPER, KILL, WALLOPS, REHASH, DIE, KLINE, DLINE,
UNKLINE, UNDLINE.

RFC 2812 sections 3.1.4 (OPER), 3.7.1 (KILL), 4.2 (DIE), 4.3 (REHASH), 4.7
(WALLOPS); "Modern IRC" for the numerics; KLINE/DLINE as Hybrid and InspIRCd
take them. Opers are configured in ``[[opers]]`` (:class:`ircd.config.OperBlock`)
with argon2id hashes from ``chatserver mkpasswd``; the password is checked off
the event loop and every failure counts in the login throttle
(:class:`ircd.limits.LoginThrottle`) under the key ``oper:<name>``.

Class ``oper`` may KILL, WALLOPS, KLINE/DLINE/UNKLINE/UNDLINE, STATS k/d and
override channel operator checks for KICK and channel MODE (each override is
logged); class ``admin`` may also REHASH and DIE. Which commands need which
class is a column of the command table (``ircd/commands/table.py``), and the
481 ERR_NOPRIVILEGES refusal is made by the dispatcher, before a handler here
runs. The oper checks and the channel override are :mod:`ircd.ops.privileges`;
bans in force (disconnecting who a new ban matches, the K-line check at
registration and on a nick change, STATS k/d) are :mod:`ircd.ops.bans`; the
ban matching and expiry live in :mod:`ircd.serverbans`; storage behind
``Server.ban_store``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from passlib.hash import argon2

from ircd.commands.registry import Context, take_label
from ircd.ops.bans import apply_ban
from ircd.ops.login import answer_later
from ircd.protocol import numerics as N
from ircd.protocol.masks import mask_match
from ircd.protocol.message import Message, fit_line, truncate_utf8
from ircd.reply import Reply
from ircd.serverbans import (
    DLINE,
    KLINE,
    BadMask,
    ServerBan,
    format_duration,
    normalize_dline_mask,
    normalize_kline_mask,
    parse_duration,
)
from ircd.state import Client, Session

if TYPE_CHECKING:
    from ircd.core import Server


log = logging.getLogger("ircd.oper")

REASON_MAX = 390


# -- OPER ------------------------------------------------------------------

def _throttle_key(name: str) -> str:
    return "oper:" + name.lower()


def handle_oper(ctx: Context, msg: Message) -> None:
    """``OPER <name> <password>``: become a server operator (RFC 2812 section 3.1.4).

    Success: ``MODE <nick> :+o`` and 381 RPL_YOUREOPER. A wrong name, a
    wrong password and a host none of the oper's ``hosts`` masks allow all
    get the same ``464 ERR_PASSWDMISMATCH :Password incorrect`` after the
    same work: the password is verified with argon2 in every case (for an
    unknown name against the first configured oper's hash, its result
    ignored), so neither the numeric nor the time tells which oper names
    exist (491 ERR_NOOPERHOST is never sent). The log says which it was,
    with the address. Failures are answered after the login throttle's
    delay, and after too many the address is locked out for a while (464).
    """
    server, client, session = ctx.server, ctx.client, ctx.session
    name, password = msg.params[0], msg.params[1]
    if client.oper is not None:
        ctx.reply.numeric(N.RPL_YOUREOPER, "You are already an IRC operator")
        return
    throttle = server.login_throttle
    wait = throttle.begin(client.ip, _throttle_key(name), server.clock())
    if wait > 0:
        log.warning("OPER %s from %s refused: throttled", name, client.ip)
        ctx.reply.numeric(N.ERR_PASSWDMISMATCH,
                          f"Too many failed attempts; try again in {int(wait) + 1} seconds")
        return
    opers = server.config.opers
    block = next((o for o in opers if o.name == name), None)
    addresses = {f"{client.user}@{client.host}", f"{client.user}@{client.ip}"}
    host_ok = block is not None and any(
        mask_match(mask, a) for mask in block.hosts for a in addresses)
    why = "no such oper" if block is None else "host not allowed" if not host_ok else ""
    if not opers:  # no oper exists: nothing to hide, nothing to verify against
        _failed(server, client, session, name, N.ERR_PASSWDMISMATCH, "Password incorrect", why)
        return
    session.pending = True  # the lines after OPER wait for the answer, in order
    # An unknown name costs the same argon2 verification as a known one.
    stored = (block or opers[0]).password
    oper = (block.name, block.class_) if block is not None else ("", "")

    def verify() -> bool:
        try:
            right = bool(argon2.verify(password, stored))
        except (ValueError, TypeError):
            right = False
        return right and not why

    def done(ok: Any, error: BaseException | None) -> None:
        session.pending = False
        if client.quitting:
            return
        if error is not None:
            throttle.abandon(client.ip, _throttle_key(name))
            log.error("OPER password check for %s failed: %r", name, error)
            reply = Reply(server.name, client, session)
            reply.numeric(N.ERR_UNKNOWNERROR, "OPER", "Password check failed, try again later")
            _send(server, session, reply)
        elif not ok:
            _failed(server, client, session, name, N.ERR_PASSWDMISMATCH, "Password incorrect",
                    why or "wrong password")
            return
        else:
            throttle.success(client.ip, _throttle_key(name), begun=True)
            client.oper = oper
            client.set_mode("o", True)
            server.user_changed(client)
            reply = Reply(server.name, client, session)
            reply.raw(f":{client.source} MODE {client.nick} :+o")
            reply.numeric(N.RPL_YOUREOPER, "You are now an IRC operator")
            log.warning("OPER: %s from %s is now oper %s (class %s)", client.nick, client.ip,
                        oper[0], oper[1])
            _send(server, session, reply)
        session.resume()

    server.scheduler.run_blocking(verify, done)


def _send(server: Server, session: Session, reply: Reply) -> None:
    take_label(session, reply, server.ids)
    session.write(reply.to_bytes())


def _failed(server, client: Client, session: Session, name: str, code: str, text: str,
            why: str) -> None:
    """Count a failed OPER, log it, and answer ``code`` after the throttle's delay."""
    delay = server.login_throttle.failure(client.ip, _throttle_key(name), server.clock(),
                                          begun=True)   # (counted by begin in handle_oper)
    log.warning("OPER %s failed from %s (%s, user %s): %s", name, client.ip, client.nick,
                client.user, why)
    answer_later(server, client, delay, lambda reply: reply.numeric(code, text), session)


# -- KILL / WALLOPS ----------------------------------------------------------

def handle_kill(ctx: Context, msg: Message) -> None:
    """``KILL <nick> [:<reason>]``: disconnect a user (RFC 2812 section 3.7.1; opers only).

    The victim gets ``:<oper> KILL <nick> :<reason>`` and ``ERROR``; the users
    who share a channel with it see ``QUIT :Killed (<oper> (<reason>))``.
    481 for non-opers, 401 for an unknown nick, 483 for a built-in service.
    """
    server, client = ctx.server, ctx.client
    target = server.world.find_user(msg.params[0])
    if target is None:
        ctx.reply.numeric(N.ERR_NOSUCHNICK, msg.params[0], "No such nick/channel")
        return
    if target.is_pseudo:  # echobot, NickServ, ChanServ
        ctx.reply.numeric(N.ERR_CANTKILLSERVER, "You cannot kill a service")
        return
    reason = truncate_utf8(msg.params[1] if len(msg.params) > 1 and msg.params[1] else client.nick,
                           REASON_MAX)
    target.write((fit_line(f":{client.source} KILL {target.nick} :{reason}") + "\r\n").encode())
    quit_reason = f"Killed ({client.nick} ({reason}))"
    log.warning("KILL %s by %s (oper %s): %s", target.nick, client.source,
                client.oper[0] if client.oper else "?", reason)
    server.quit(target, quit_reason, error=f"Closing Link: {target.host} ({quit_reason})",
                apply=ctx.apply)


def handle_wallops(ctx: Context, msg: Message) -> None:
    """``WALLOPS :<text>``: a message to every user with mode +w (RFC 2812 section 4.7; opers only)."""
    server, client = ctx.server, ctx.client
    if not msg.params[0]:
        ctx.reply.numeric(N.ERR_NEEDMOREPARAMS, "WALLOPS", "Not enough parameters")
        return
    line = fit_line(f":{client.source} WALLOPS :{msg.params[0]}")
    data = (line + "\r\n").encode()
    for user in server.world.users.values():
        if "w" in user.modes:
            if user is client:
                ctx.reply.raw(line)
            else:
                user.write(data)


# -- REHASH / DIE ------------------------------------------------------------

def handle_rehash(ctx: Context, msg: Message) -> None:
    """``REHASH``: reload the config file, exactly as SIGHUP does (RFC 2812 section 4.3; admins).

    382 RPL_REHASHING, then a NOTICE with the outcome (reloaded, or the error
    and the old configuration kept).
    """
    hook = ctx.server.rehash_hook
    client = ctx.client
    log.warning("REHASH by %s (oper %s)", client.source, client.oper[0] if client.oper else "?")
    if hook is None:
        ctx.reply.numeric(N.RPL_REHASHING, "*", "Rehashing")
        ctx.server.notice(client, "REHASH: this server has no config file to reload")
        return
    path, outcome = hook()
    ctx.reply.numeric(N.RPL_REHASHING, path, "Rehashing")
    ctx.reply.send("NOTICE", client.nick, f"REHASH: {outcome}", trailing=True)


def handle_die(ctx: Context, msg: Message) -> None:
    """``DIE``: shut the server down gracefully, as SIGTERM does (RFC 2812 section 4.2; admins)."""
    client = ctx.client
    log.warning("DIE by %s (oper %s)", client.source, client.oper[0] if client.oper else "?")
    hook = ctx.server.die_hook
    if hook is None:
        ctx.server.notice(client, "DIE: this server cannot be stopped from IRC")
        return
    hook()


# -- KLINE / DLINE -----------------------------------------------------------

def _ban_args(ctx: Context, msg: Message) -> tuple[int, str, str] | None:
    """``[duration] <mask> [:<reason>]`` -> (seconds or 0, mask, reason); 461 when no mask."""
    params = list(msg.params)
    duration = parse_duration(params[0]) if len(params) > 1 else None
    if duration is not None:
        params.pop(0)
    if not params or not params[0]:
        ctx.reply.numeric(N.ERR_NEEDMOREPARAMS, msg.command, "Not enough parameters")
        return None
    reason = params[1] if len(params) > 1 and params[1] else "No reason"
    return duration or 0, params[0], truncate_utf8(reason, REASON_MAX)


def handle_kline(ctx: Context, msg: Message) -> None:
    """``KLINE [<duration>] <[nick!]user@host | nick> [:<reason>]``: ban a mask (opers only).

    ``user@host`` means any nick; a nick alone bans that online user's host
    (``*!*@host``). Durations: ``30s``, ``30m``, ``1h``, ``2d``, ``1w``, a bare
    number is minutes; none: permanent. Users online who match (opers
    excepted) are disconnected. 415 ERR_BADMASK for a bad mask, 401 for an
    unknown nick.
    """
    args = _ban_args(ctx, msg)
    if args is None:
        return
    duration, mask, reason = args
    if "@" not in mask and "!" not in mask:
        target = ctx.server.world.find_user(mask)
        if target is None:
            ctx.reply.numeric(N.ERR_NOSUCHNICK, mask, "No such nick/channel")
            return
        mask = f"*!*@{target.host}"
    try:
        mask = normalize_kline_mask(mask)
    except BadMask:
        ctx.reply.numeric(N.ERR_BADMASK, mask, "Bad user@host mask")
        return
    _add_ban(ctx, KLINE, mask, duration, reason)


def handle_dline(ctx: Context, msg: Message) -> None:
    """``DLINE [<duration>] <ip | cidr | nick> [:<reason>]``: ban an address (opers only).

    Connections from it are refused before registration (``ERROR``); users
    online from it (opers excepted) are disconnected. A nick bans that online
    user's address. 415 ERR_BADMASK for what is no address or network.
    """
    args = _ban_args(ctx, msg)
    if args is None:
        return
    duration, mask, reason = args
    target = ctx.server.world.find_user(mask)
    if target is not None and "." not in mask and ":" not in mask:
        mask = target.ip
    try:
        mask = normalize_dline_mask(mask)
    except BadMask:
        ctx.reply.numeric(N.ERR_BADMASK, mask, "Bad IP address or network")
        return
    _add_ban(ctx, DLINE, mask, duration, reason)


def _add_ban(ctx: Context, kind: str, mask: str, duration: int, reason: str) -> None:
    server, client = ctx.server, ctx.client
    now = server.clock()
    ban = ServerBan(kind, mask, reason, client.source, now, now + duration if duration else 0.0)
    replaced = server.serverbans.add(ban)
    server.store_serverban(ban, apply=ctx.apply)
    length = format_duration(duration)
    log.warning("%s-line %s on %s (%s) by %s: %s", kind, "updated" if replaced else "added",
                mask, length, client.source, reason)
    ctx.reply.send("NOTICE", client.nick,
                   f"{'Updated' if replaced else 'Added'} {kind}-line on {mask} ({length}): {reason}",
                   trailing=True)
    hit = apply_ban(server, ban, ctx.apply)
    if hit:
        ctx.reply.send("NOTICE", client.nick,
                       f"{kind}-line on {mask} disconnected: {', '.join(hit)}", trailing=True)


def handle_unkline(ctx: Context, msg: Message) -> None:
    """``UNKLINE <[nick!]user@host>``: remove a K-line (opers only); a NOTICE says what happened."""
    _remove_ban(ctx, KLINE, msg.params[0])


def handle_undline(ctx: Context, msg: Message) -> None:
    """``UNDLINE <ip | cidr>``: remove a D-line (opers only); a NOTICE says what happened."""
    _remove_ban(ctx, DLINE, msg.params[0])


def _remove_ban(ctx: Context, kind: str, mask: str) -> None:
    server, client = ctx.server, ctx.client
    ban = server.serverbans.remove(kind, mask)
    if ban is None:
        ctx.reply.send("NOTICE", client.nick, f"No {kind}-line on {mask}", trailing=True)
        return
    server.store_serverban(ban, delete=True, apply=ctx.apply)
    log.warning("%s-line on %s removed by %s", kind, ban.mask, client.source)
    ctx.reply.send("NOTICE", client.nick, f"Removed {kind}-line on {ban.mask}", trailing=True)
