"""Sending stored messages as an IRCv3 batch (ircv3.net "batch"), as CHATHISTORY
and the join-time replay do."""

from __future__ import annotations

import itertools

from ircd.events import Event
from ircd.history import Item

_BATCH_IDS = itertools.count(1)


def new_batch_id() -> str:
    """A batch reference tag unique in this process (``h1``, ``h2``...)."""
    return f"h{next(_BATCH_IDS)}"


def send_batch(client, reply, target: str, items: list[Item], batch_type: str = "chathistory") -> None:
    """Add ``items`` to ``reply`` in a batch (or plainly, for a client without ``batch``)."""
    use_batch = "batch" in client.caps
    ref = new_batch_id()
    if use_batch:
        reply.send("BATCH", "+" + ref, batch_type, target)
    # Tags as the client's capabilities allow (server-time gives the original time).
    mask = client.tagmask
    for item in items:
        line = f":{item.source} {item.command} {item.to_name} :{item.text}"
        event = Event(line, item.t, item.msgid, item.account)
        reply.raw(event.str_for(mask, {"batch": ref} if use_batch else None))
    if use_batch:
        reply.send("BATCH", "-" + ref)
