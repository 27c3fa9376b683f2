"""Sending stored messages as an IRCv3 batch (ircv3.net "batch"), as CHATHISTORY
and the join-time replay do."""

from __future__ import annotations

from ircd.events import Event, Ids
from ircd.history import Item
from ircd.reply import Reply


def send_batch(ids: Ids, reply: Reply, target: str, items: list[Item],
               batch_type: str = "chathistory") -> None:
    """Add ``items`` to ``reply`` in a batch (or plainly, for a session without
    ``batch``); ``ids`` (``server.ids``) makes the batch's reference tag."""
    use_batch = "batch" in reply.session.caps
    ref = ids.batch()
    if use_batch:
        reply.send("BATCH", "+" + ref, batch_type, target)
    # Tags as the client's capabilities allow (server-time gives the original time).
    mask = reply.session.tagmask
    for item in items:
        line = f":{item.source} {item.command} {item.to_name} :{item.text}"
        event = Event(line, item.t, item.msgid, item.account)
        reply.raw(event.str_for(mask, {"batch": ref} if use_batch else None))
    if use_batch:
        reply.send("BATCH", "-" + ref)
