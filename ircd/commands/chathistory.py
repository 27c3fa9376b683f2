"""CHATHISTORY: message history (IRCv3 "draft/chathistory", with message-ids and server-time).

Subcommands ``LATEST``, ``BEFORE``, ``AFTER``, ``AROUND``, ``BETWEEN`` take a
target (a channel you are in, or the nick of an account you talked to while
logged in) and selectors ``msgid=<id>`` or ``timestamp=<iso8601>`` (``*`` for
LATEST means "up to now"); ``TARGETS <ts> <ts> <limit>`` lists the targets
with messages in a period. Results are sent oldest first in a
``BATCH +<id> chathistory <target>`` (``draft/chathistory-targets`` for
TARGETS), each line with ``time`` and ``msgid``. At most ISUPPORT
``CHATHISTORY=`` messages per request. Errors are standard replies:
``FAIL CHATHISTORY INVALID_PARAMS|INVALID_TARGET|UNKNOWN_COMMAND ...``.
"""

from __future__ import annotations

from ircd.commands.registry import Context
from ircd.events import format_time, parse_time
from ircd.history import dm_key
from ircd.ops.batches import send_batch
from ircd.protocol.casemap import casefold
from ircd.protocol.message import Message


def _fail(ctx: Context, code: str, *params: str) -> None:
    ctx.reply.send("FAIL", "CHATHISTORY", code, *params, trailing=True)


def _selector(text: str) -> tuple[str, float | str] | None:
    kind, sep, value = text.partition("=")
    if not sep:
        return None
    if kind == "timestamp":
        t = parse_time(value)
        return ("timestamp", t) if t is not None else None
    if kind == "msgid" and value:
        return ("msgid", value)
    return None


def _target_key(ctx: Context, target: str) -> str | None:
    """The history key for ``target`` if the client may read it, else None."""
    client, world = ctx.client, ctx.server.world
    if target[:1] == "#":
        chan = world.find_channel(target)
        if chan is None or client not in chan.members:
            return None
        return casefold(chan.name)
    if not client.account:
        return None
    user = world.find_user(target)  # an online user's account may differ from the nick
    return dm_key(client.account, user.account if user is not None and user.account else target)


def handle_chathistory(ctx: Context, msg: Message) -> None:
    """``CHATHISTORY <subcommand> ...`` (see the module docstring)."""
    server = ctx.server
    history = server.history
    sub = msg.params[0].upper()
    if history is None:
        _fail(ctx, "UNKNOWN_COMMAND", sub, "History is disabled on this server")
        return
    limit_max = server.config.history.chathistory_limit
    p = msg.params
    if sub == "TARGETS":
        if len(p) < 4:
            _fail(ctx, "INVALID_PARAMS", sub, "Not enough parameters")
            return
        a, b = _selector(p[1]), _selector(p[2])
        if not a or not b or a[0] != "timestamp" or b[0] != "timestamp" or not p[3].isdigit():
            _fail(ctx, "INVALID_PARAMS", sub, "Invalid parameters")
            return
        client = ctx.client
        # Only the client's channels and its own conversations (an index), never
        # every stored target.
        keys: dict[str, str] = {casefold(c.name): c.name for c in client.channels.values()}
        if client.account:
            keys.update(history.conversations(client.account))
        start, end = float(a[1]), float(b[1])
        found = history.targets_between(list(keys), start, end, min(int(p[3]), limit_max))
        ref = server.ids.batch()
        use_batch = "batch" in ctx.session.caps
        if use_batch:
            ctx.reply.send("BATCH", "+" + ref, "draft/chathistory-targets")
        for dm, t in found:
            tags = f"@batch={ref} " if use_batch else ""
            ctx.reply.raw(f"{tags}:{server.name} CHATHISTORY TARGETS {keys[dm]} "
                          f"timestamp={format_time(t)}")
        if use_batch:
            ctx.reply.send("BATCH", "-" + ref)
        return
    if sub not in ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN"):
        _fail(ctx, "UNKNOWN_COMMAND", sub, "Unknown subcommand")
        return
    need = 5 if sub == "BETWEEN" else 4
    if len(p) < need or not p[-1].isdigit():
        _fail(ctx, "INVALID_PARAMS", sub, "Not enough or invalid parameters")
        return
    target = p[1]
    limit = min(int(p[-1]), limit_max)
    key = _target_key(ctx, target)
    if key is None:
        _fail(ctx, "INVALID_TARGET", sub, target, "No such target or no access")
        return
    items = history.items(key)
    refs = [_selector(x) for x in p[2:-1]]
    if sub == "LATEST" and p[2] == "*":
        send_batch(ctx.server.ids, ctx.reply, target, items[-limit:] if limit else [])
        return
    where = [history.bounds(items, r) if r else None for r in refs]
    if any(w is None for w in where):
        _fail(ctx, "INVALID_PARAMS", sub, "Invalid message reference")
        return
    (end_before, start_after), *rest = where  # type: ignore[misc]
    if sub == "LATEST":
        result = items[start_after:][-limit:] if limit else []
    elif sub == "BEFORE":
        result = items[max(0, end_before - limit) : end_before]
    elif sub == "AFTER":
        result = items[start_after : start_after + limit]
    elif sub == "AROUND":
        first = max(0, end_before - limit // 2)
        result = items[first : first + limit]
    else:  # BETWEEN, exclusive at both ends, counted from the first reference
        end_before2, start_after2 = rest[0]  # type: ignore[misc]
        if start_after <= end_before2:
            result = items[start_after:end_before2][:limit]
        else:
            result = items[start_after2:end_before][-limit:] if limit else []
    send_batch(ctx.server.ids, ctx.reply, target, result)
