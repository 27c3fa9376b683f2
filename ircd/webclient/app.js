// chatserver web client: IRC over WebSocket (IRCv3 "text.ircv3.net"), no build step.
//
// One IRC line per WebSocket message. Login with PASS (a new nickname with a
// password registers the account, as on the IRC port). Capabilities used when
// offered: echo-message, server-time, message-tags (msgid), batch,
// draft/chathistory, labeled-response, multi-prefix.
// Text from the network is only ever put into the page as text nodes
// (textContent / createTextNode); links are <a> elements made here, for
// http(s) URLs only.
"use strict";

const WANTED_CAPS = ["echo-message", "server-time", "message-tags", "batch",
  "draft/chathistory", "labeled-response", "multi-prefix"];
const HISTORY_LINES = 50;
const MAX_BACKOFF = 30;

const $ = (id) => document.getElementById(id);

const S = {
  ws: null,
  nick: "",
  password: "",
  caps: new Set(),
  offered: new Set(),
  registered: false,
  everRegistered: false,
  loginFailed: false,   // a login error: do not reconnect
  userQuit: false,
  retry: 0,
  retryTimer: null,
  countdown: null,
  convs: new Map(),     // folded name -> conversation
  open: null,           // folded name of the open conversation
  wantOpen: null,       // folded name to open when it appears (/join, /msg)
  batches: new Map(),   // batch ref -> {type, target, items}
  pendingNotices: [],   // server notices before a conversation exists
  label: 0,
};

// -- IRC helpers ------------------------------------------------------------

function fold(s) {  // CASEMAPPING=rfc1459
  return s.toLowerCase().replace(/\[/g, "{").replace(/\]/g, "}").replace(/\\/g, "|").replace(/~/g, "^");
}

function isChannel(name) { return name.length > 0 && "#&".includes(name[0]); }

function unescapeTag(v) {
  return v.replace(/\\(.)?/g, (_, c) => ({ ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" }[c] ?? (c || "")));
}

function parseLine(line) {
  const msg = { tags: {}, source: "", command: "", params: [] };
  let i = 0;
  const skipSpaces = () => { while (line[i] === " ") i++; };
  if (line[0] === "@") {
    let sp = line.indexOf(" ");
    if (sp < 0) sp = line.length;
    for (const tag of line.slice(1, sp).split(";")) {
      const eq = tag.indexOf("=");
      if (eq < 0) msg.tags[tag] = "";
      else msg.tags[tag.slice(0, eq)] = unescapeTag(tag.slice(eq + 1));
    }
    i = sp + 1;
    skipSpaces();
  }
  if (line[i] === ":") {
    let sp = line.indexOf(" ", i);
    if (sp < 0) sp = line.length;
    msg.source = line.slice(i + 1, sp);
    i = sp + 1;
    skipSpaces();
  }
  while (i < line.length) {
    if (line[i] === ":" && msg.command) { msg.params.push(line.slice(i + 1)); break; }
    let sp = line.indexOf(" ", i);
    if (sp < 0) sp = line.length;
    const word = line.slice(i, sp);
    if (!msg.command) msg.command = word.toUpperCase(); else msg.params.push(word);
    i = sp + 1;
    skipSpaces();
  }
  return msg;
}

function nickOf(source) { return source.split("!")[0]; }

function stripFormatting(text) {
  return text.replace(/\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1e\x1f]/g, "");
}

function send(line) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(line.replace(/[\r\n]/g, " "));
}

// -- conversations ------------------------------------------------------------

function conv(name, create = true) {
  const key = fold(name);
  let c = S.convs.get(key);
  if (!c && create) {
    c = { name, key, kind: isChannel(name) ? "channel" : "dm", log: [], msgids: new Set(),
      unread: 0, members: new Map(), names: null, topic: "", historyAsked: false };
    S.convs.set(key, c);
    renderConversations();
  }
  return c;
}

function askHistory(c) {
  if (c.historyAsked || !S.caps.has("draft/chathistory") || !S.caps.has("batch")) return;
  c.historyAsked = true;
  const label = S.caps.has("labeled-response") ? `@label=h${++S.label} ` : "";
  send(`${label}CHATHISTORY LATEST ${c.name} * ${HISTORY_LINES}`);
}

function openConv(key) {
  const c = S.convs.get(key);
  if (!c) return;
  S.open = key;
  c.unread = 0;
  if (S.pendingNotices.length) {
    for (const e of S.pendingNotices) addEntry(c, e, false);
    S.pendingNotices = [];
  }
  renderConversations();
  renderOpen();
  askHistory(c);
}

function addEntry(c, e, countUnread = true) {
  if (e.msgid) {
    if (c.msgids.has(e.msgid)) return;
    c.msgids.add(e.msgid);
  }
  c.log.push(e);
  if (c.log.length > 2000) c.log.splice(0, c.log.length - 2000);
  if (S.open === c.key) {
    const log = $("log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(entryElement(e));
    if (atBottom || e.self) log.scrollTop = log.scrollHeight;
  } else if (countUnread && e.kind !== "event") {
    c.unread += 1;
    renderConversations();
  }
}

function addEvent(c, text) { addEntry(c, { kind: "event", time: new Date(), nick: "", text }); }

function addError(text) {
  const c = S.open ? S.convs.get(S.open) : null;
  const e = { kind: "error-entry", time: new Date(), nick: "", text };
  if (c) addEntry(c, e, false); else S.pendingNotices.push(e);
}

function removeConv(key) {
  S.convs.delete(key);
  if (S.open === key) {
    S.open = null;
    const next = S.convs.get("#general") ? "#general" : S.convs.keys().next().value;
    if (next) openConv(next); else renderOpen();
  }
  renderConversations();
}

// -- rendering ------------------------------------------------------------------

function hhmm(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function appendText(el, text) {
  const re = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const m of text.matchAll(re)) {
    const url = m[0].replace(/[.,;:!?)\]}]+$/, "");
    el.append(document.createTextNode(text.slice(last, m.index)));
    const href = safeUrl(url);
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = url;
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
      el.append(a);
    } else {
      el.append(document.createTextNode(url));
    }
    last = m.index + url.length;
  }
  el.append(document.createTextNode(text.slice(last)));
}

function entryElement(e) {
  const li = document.createElement("li");
  li.className = e.kind + (e.self ? " self" : "");
  const time = document.createElement("time");
  time.dateTime = e.time.toISOString();
  time.textContent = hhmm(e.time);
  li.append(time);
  if (e.nick) {
    const who = document.createElement("span");
    who.className = "nick";
    who.textContent = e.kind === "action" ? `* ${e.nick}` : e.nick;
    li.append(who);
  }
  const body = document.createElement("span");
  body.className = "text";
  appendText(body, e.text);
  li.append(body);
  return li;
}

function renderConversations() {
  const ul = $("conversations");
  const items = [...S.convs.values()].sort((a, b) =>
    (a.kind === b.kind ? 0 : a.kind === "channel" ? -1 : 1) || a.key.localeCompare(b.key));
  ul.replaceChildren(...items.map((c) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.key = c.key;
    const name = document.createElement("span");
    name.textContent = c.name;
    b.append(name);
    if (c.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(c.unread);
      const sr = document.createElement("span");
      sr.className = "sr-only";
      sr.textContent = " unread";
      badge.append(sr);
      b.append(badge);
    }
    if (c.key === S.open) b.setAttribute("aria-current", "true");
    b.addEventListener("click", () => { openConv(c.key); $("message").focus(); });
    li.append(b);
    return li;
  }));
}

function renderOnline() {
  const c = S.open ? S.convs.get(S.open) : null;
  const ul = $("online");
  let members = [];
  if (c && c.kind === "channel") members = [...c.members.values()];
  else if (c) members = [{ nick: S.nick, prefix: "" }, { nick: c.name, prefix: "" }];
  const rank = (m) => (m.prefix.includes("@") ? 0 : m.prefix.includes("+") ? 1 : 2);
  members.sort((a, b) => rank(a) - rank(b) || fold(a.nick).localeCompare(fold(b.nick)));
  ul.replaceChildren(...members.map((m) => {
    const li = document.createElement("li");
    const mark = m.prefix.includes("@") ? "@" : m.prefix.includes("+") ? "+" : "";
    if (mark) {
      const p = document.createElement("span");
      p.className = "prefix";
      p.title = mark === "@" ? "operator" : "voice";
      p.textContent = mark;
      li.append(p);
    }
    li.append(document.createTextNode(m.nick));
    return li;
  }));
  $("online-title").textContent = `Online (${members.length})`;
}

function renderOpen() {
  const c = S.open ? S.convs.get(S.open) : null;
  $("conv-title").textContent = c ? c.name : "";
  $("conv-topic").textContent = c ? c.topic : "";
  const log = $("log");
  log.replaceChildren(...(c ? c.log.map(entryElement) : []));
  log.scrollTop = log.scrollHeight;
  renderOnline();
}

function setState(text, trouble = false) {
  const el = $("state");
  el.textContent = text;
  el.classList.toggle("trouble", trouble);
}

function showChat(on) {
  $("login-view").hidden = on;
  $("chat-view").hidden = !on;
}

// -- the connection ---------------------------------------------------------------

function connect() {
  clearTimeout(S.retryTimer);
  clearInterval(S.countdown);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let ws;
  try {
    ws = new WebSocket(`${scheme}//${location.host}/socket`, ["text.ircv3.net"]);
  } catch (err) {
    loginFailed(`Cannot connect: ${err.message}`);
    return;
  }
  S.ws = ws;
  S.registered = false;
  S.caps = new Set();
  S.offered = new Set();
  S.batches = new Map();
  setState("Connecting…");
  ws.addEventListener("open", () => {
    send("CAP LS 302");
    if (S.password) send(`PASS :${S.password}`);
    send(`NICK ${S.nick}`);
    send(`USER ${S.nick} 0 * :${S.nick} (web)`);
  });
  ws.addEventListener("message", (ev) => {
    for (const line of String(ev.data).split(/\r?\n/)) {
      if (line) {
        try { handle(parseLine(line)); } catch (err) { console.error("bad line", line, err); }
      }
    }
  });
  ws.addEventListener("close", () => closed(ws));
}

function closed(ws) {
  if (ws !== S.ws) return;
  S.ws = null;
  const wasRegistered = S.registered;
  S.registered = false;
  if (S.loginFailed || S.userQuit || !S.everRegistered) {
    $("connect").disabled = false;
    if (!S.everRegistered || S.loginFailed) {
      showChat(false);
      if (!$("login-error").textContent) $("login-error").textContent = "Could not connect to the server.";
    }
    setState(S.userQuit ? "Disconnected" : "Not connected", !S.userQuit);
    return;
  }
  if (wasRegistered) S.retry = 0;
  const delay = Math.min(MAX_BACKOFF, 2 ** S.retry);
  S.retry += 1;
  let left = delay;
  const tick = () => setState(`Connection lost. Reconnecting in ${left} s…`, true);
  tick();
  S.countdown = setInterval(() => { left -= 1; if (left > 0) tick(); }, 1000);
  S.retryTimer = setTimeout(connect, delay * 1000);
}

function loginFailed(text) {
  S.loginFailed = true;
  $("login-error").textContent = text;
  if (S.ws) S.ws.close();
}

// -- handling server lines -------------------------------------------------------

function handle(msg) {
  const p = msg.params;
  const last = p.length ? p[p.length - 1] : "";
  const batchRef = msg.tags.batch;
  if (batchRef && S.batches.has(batchRef) && (msg.command === "PRIVMSG" || msg.command === "NOTICE")) {
    S.batches.get(batchRef).items.push(msg);
    return;
  }
  switch (msg.command) {
    case "PING": send(`PONG :${last}`); return;
    case "CAP": return handleCap(msg);
    case "001": return welcome(msg);
    case "433": case "432": case "464": case "465": return loginError(msg);
    case "ERROR":
      if (!S.registered && !$("login-error").textContent) loginFailed(last);
      else if (S.registered) addError(`Server: ${last}`);
      return;
    case "JOIN": return onJoin(msg);
    case "PART": return onPart(msg);
    case "KICK": return onKick(msg);
    case "QUIT": return onQuit(msg);
    case "NICK": return onNick(msg);
    case "MODE": return onMode(msg);
    case "TOPIC": {
      const c = conv(p[0], false);
      if (c) { c.topic = stripFormatting(last); addEvent(c, `${nickOf(msg.source)} set the topic: ${c.topic}`); if (S.open === c.key) $("conv-topic").textContent = c.topic; }
      return;
    }
    case "332": {
      const c = conv(p[1], false);
      if (c) { c.topic = stripFormatting(last); if (S.open === c.key) $("conv-topic").textContent = c.topic; }
      return;
    }
    case "331": {
      const c = conv(p[1], false);
      if (c) { c.topic = ""; addEvent(c, "No topic is set."); renderOpen(); }
      return;
    }
    case "353": return onNames(msg);
    case "366": {
      const c = conv(p[1], false);
      if (c && c.names) { c.members = c.names; c.names = null; if (S.open === c.key) renderOnline(); }
      return;
    }
    case "PRIVMSG": case "NOTICE": return onMessage(msg, false);
    case "BATCH": return onBatch(msg);
    case "FAIL": return;  // e.g. CHATHISTORY for a guest's DM: nothing to load
    default:
      if (/^[45]\d\d$/.test(msg.command) && S.registered) {
        const what = p.slice(1, -1).join(" ");
        addError(what ? `${what}: ${last}` : last);
      }
  }
}

function handleCap(msg) {
  const p = msg.params;
  const sub = (p[1] || "").toUpperCase();
  if (sub === "LS") {
    const more = p[2] === "*";
    for (const item of p[p.length - 1].split(" ")) if (item) S.offered.add(item.split("=")[0]);
    if (more) return;
    const want = WANTED_CAPS.filter((c) => S.offered.has(c));
    if (want.length) send(`CAP REQ :${want.join(" ")}`); else send("CAP END");
  } else if (sub === "ACK") {
    for (const c of p[p.length - 1].split(" ")) if (c) S.caps.add(c.replace(/^-/, ""));
    if (!S.registered) send("CAP END");
  } else if (sub === "NAK") {
    if (!S.registered) send("CAP END");
  }
}

function welcome(msg) {
  S.registered = true;
  S.everRegistered = true;
  S.loginFailed = false;
  S.retry = 0;
  S.nick = msg.params[0];
  $("login-error").textContent = "";
  $("connect").disabled = false;
  try { localStorage.setItem("chatserver.nick", S.nick); } catch { /* private mode */ }
  setState(`Connected as ${S.nick}`);
  showChat(true);
  // After a reconnect: join the rooms we were in again, fetch what was missed.
  for (const c of S.convs.values()) {
    c.historyAsked = false;
    if (c.kind === "channel") send(`JOIN ${c.name}`);
  }
  if (S.open) askHistory(S.convs.get(S.open));
  $("message").focus();
}

function loginError(msg) {
  if (S.registered) {
    addError(msg.params.slice(1).join(": "));
    return;
  }
  const text = msg.params[msg.params.length - 1];
  const nick = S.nick;
  if (msg.command === "433") {
    loginFailed(/already in use/i.test(text)
      ? `${nick} is already online elsewhere (nickname in use). Try again later or choose another nickname.`
      : `${nick}: ${text}. Enter the password of that account, or choose another nickname.`);
  } else if (msg.command === "432") {
    loginFailed(`“${nick}” cannot be used as a nickname: ${text}.`);
  } else if (/incorrect/i.test(text)) {
    loginFailed(`Wrong password for ${nick}. Check the password and try again.`);
  } else if (/password required/i.test(text)) {
    loginFailed(`${nick} is a registered account: enter its password.`);
  } else {
    loginFailed(text);
  }
}

function onJoin(msg) {
  const chan = msg.params[0];
  const nick = nickOf(msg.source);
  if (fold(nick) === fold(S.nick)) {
    const c = conv(chan);
    c.members = new Map();
    if (!S.open || S.wantOpen === c.key || (S.open !== c.key && c.key === "#general" && !S.convs.get(S.open))) {
      S.wantOpen = null;
      openConv(c.key);
    } else if (S.open === c.key) {
      askHistory(c);
    }
    return;
  }
  const c = conv(chan, false);
  if (!c) return;
  c.members.set(fold(nick), { nick, prefix: "" });
  addEvent(c, `${nick} joined`);
  if (S.open === c.key) renderOnline();
}

function onPart(msg) {
  const c = conv(msg.params[0], false);
  if (!c) return;
  const nick = nickOf(msg.source);
  if (fold(nick) === fold(S.nick)) { removeConv(c.key); return; }
  c.members.delete(fold(nick));
  const reason = msg.params[1] ? ` (${stripFormatting(msg.params[1])})` : "";
  addEvent(c, `${nick} left${reason}`);
  if (S.open === c.key) renderOnline();
}

function onKick(msg) {
  const c = conv(msg.params[0], false);
  if (!c) return;
  const victim = msg.params[1];
  const reason = msg.params[2] ? ` (${stripFormatting(msg.params[2])})` : "";
  if (fold(victim) === fold(S.nick)) {
    removeConv(c.key);
    addError(`You were removed from ${c.name} by ${nickOf(msg.source)}${reason}`);
    return;
  }
  c.members.delete(fold(victim));
  addEvent(c, `${victim} was removed by ${nickOf(msg.source)}${reason}`);
  if (S.open === c.key) renderOnline();
}

function onQuit(msg) {
  const nick = nickOf(msg.source);
  const key = fold(nick);
  const reason = msg.params[0] ? ` (${stripFormatting(msg.params[0])})` : "";
  for (const c of S.convs.values()) {
    if (c.members.delete(key) || c.key === key) addEvent(c, `${nick} quit${reason}`);
  }
  renderOnline();
}

function onNick(msg) {
  const old = nickOf(msg.source);
  const nick = msg.params[0];
  if (fold(old) === fold(S.nick)) S.nick = nick;
  for (const c of S.convs.values()) {
    const m = c.members.get(fold(old));
    if (m) {
      c.members.delete(fold(old));
      c.members.set(fold(nick), { nick, prefix: m.prefix });
      addEvent(c, `${old} is now known as ${nick}`);
    }
  }
  renderOnline();
}

function onMode(msg) {
  const c = conv(msg.params[0], false);
  if (!c || c.kind !== "channel") return;
  const modes = msg.params[1] || "";
  const args = msg.params.slice(2);
  let adding = true;
  for (const ch of modes) {
    if (ch === "+" || ch === "-") { adding = ch === "+"; continue; }
    if (ch === "o" || ch === "v") {
      const who = args.shift();
      const m = who && c.members.get(fold(who));
      if (m) {
        const mark = ch === "o" ? "@" : "+";
        m.prefix = adding ? (m.prefix.includes(mark) ? m.prefix : m.prefix + mark) : m.prefix.replace(mark, "");
      }
    } else if (ch === "b" || ch === "k" || (ch === "l" && adding)) {
      args.shift();
    }
  }
  addEvent(c, `${nickOf(msg.source)} set mode ${msg.params.slice(1).join(" ")}`);
  if (S.open === c.key) renderOnline();
}

function onNames(msg) {
  const c = conv(msg.params[2], false);
  if (!c) return;
  if (!c.names) c.names = new Map();
  for (const item of msg.params[3].split(" ")) {
    if (!item) continue;
    const m = item.match(/^([@+%&~]*)(.*)$/);
    const nick = m[2].split("!")[0];
    c.names.set(fold(nick), { nick, prefix: m[1] });
  }
}

function messageEntry(msg) {
  const from = nickOf(msg.source);
  let text = msg.params[1] || "";
  let kind = msg.command === "NOTICE" ? "notice" : "msg";
  if (text.startsWith("\x01")) {
    const inner = text.replace(/^\x01|\x01$/g, "");
    if (!inner.toUpperCase().startsWith("ACTION")) return null;  // other CTCP: not shown
    text = inner.slice(7);
    kind = "action";
  }
  const time = msg.tags.time ? new Date(msg.tags.time) : new Date();
  return { kind, time: isNaN(time) ? new Date() : time, nick: from, text: stripFormatting(text),
    msgid: msg.tags.msgid, self: fold(from) === fold(S.nick) };
}

function targetConv(msg, create) {
  const from = nickOf(msg.source);
  const target = msg.params[0].replace(/^[@+]+(?=[#&])/, "");
  if (!msg.source.includes("!")) return null;  // from the server
  if (isChannel(target)) return conv(target, create);
  return conv(fold(from) === fold(S.nick) ? target : from, create);
}

function onMessage(msg) {
  const e = messageEntry(msg);
  if (!e) return;
  const c = targetConv(msg, true);
  if (!c) {
    const notice = { kind: "notice", time: e.time, nick: "server", text: e.text };
    const open = S.open ? S.convs.get(S.open) : null;
    if (open) addEntry(open, notice, false); else S.pendingNotices.push(notice);
    return;
  }
  if (c.log.length === 0 && c.kind === "dm") askHistory(c);
  addEntry(c, e);
}

function onBatch(msg) {
  const ref = msg.params[0] || "";
  if (ref.startsWith("+")) {
    S.batches.set(ref.slice(1), { type: msg.params[1] || "", target: msg.params[2] || "", items: [] });
    return;
  }
  const b = S.batches.get(ref.slice(1));
  S.batches.delete(ref.slice(1));
  if (!b || b.type !== "chathistory" || !b.target) return;
  const c = conv(b.target, true);
  const fresh = [];
  for (const m of b.items) {
    const e = messageEntry(m);
    if (!e || (e.msgid && c.msgids.has(e.msgid))) continue;
    if (e.msgid) c.msgids.add(e.msgid);
    fresh.push(e);
  }
  if (!fresh.length) return;
  c.log = [...fresh, ...c.log].sort((a, b2) => a.time - b2.time);
  if (S.open === c.key) renderOpen();
}

// -- what the user types ------------------------------------------------------------

const HELP = "Commands: /msg NICK TEXT, /join #room, /part [#room] [reason], /me ACTION, " +
  "/topic [TEXT], /quit [reason]. //TEXT sends text starting with /.";

function sendMessage(target, text, action = false) {
  const body = action ? `\x01ACTION ${text}\x01` : text;
  send(`PRIVMSG ${target} :${body}`);
  if (!S.caps.has("echo-message")) {
    addEntry(conv(target), { kind: action ? "action" : "msg", time: new Date(), nick: S.nick, text, self: true });
  }
}

function submit(text) {
  const open = S.open ? S.convs.get(S.open) : null;
  if (!text.startsWith("/") || text.startsWith("//")) {
    if (text.startsWith("//")) text = text.slice(1);
    if (!open) { addError("Open a conversation first."); return; }
    sendMessage(open.name, text);
    return;
  }
  const [cmd, ...rest] = text.slice(1).split(" ");
  const arg = rest.join(" ").trim();
  switch (cmd.toLowerCase()) {
    case "msg": case "query": {
      const [nick, ...words] = arg.split(" ");
      const body = words.join(" ");
      if (!nick) { addError("Usage: /msg NICK TEXT"); return; }
      const c = conv(nick);
      openConv(c.key);
      if (body) sendMessage(nick, body);
      return;
    }
    case "join": {
      const room = arg.split(" ")[0];
      if (!room) { addError("Usage: /join #room"); return; }
      const name = isChannel(room) ? room : `#${room}`;
      S.wantOpen = fold(name);
      if (S.convs.has(fold(name))) openConv(fold(name));
      send(`JOIN ${name}`);
      return;
    }
    case "part": case "leave": {
      let room = open && open.kind === "channel" ? open.name : "";
      let reason = arg;
      if (isChannel(arg.split(" ")[0] || "")) { room = arg.split(" ")[0]; reason = arg.split(" ").slice(1).join(" "); }
      if (!room) { if (open) removeConv(open.key); return; }
      send(reason ? `PART ${room} :${reason}` : `PART ${room}`);
      return;
    }
    case "me":
      if (!open) { addError("Open a conversation first."); return; }
      if (arg) sendMessage(open.name, arg, true);
      return;
    case "topic":
      if (!open || open.kind !== "channel") { addError("/topic works in a room."); return; }
      send(arg ? `TOPIC ${open.name} :${arg}` : `TOPIC ${open.name}`);
      return;
    case "quit":
      S.userQuit = true;
      send(arg ? `QUIT :${arg}` : "QUIT");
      return;
    case "help":
      if (open) addEvent(open, HELP);
      return;
    default:
      addError(`Unknown command /${cmd}. ${HELP}`);
  }
}

// -- start --------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  try { $("nick").value = localStorage.getItem("chatserver.nick") || ""; } catch { /* private mode */ }
  ($("nick").value ? $("password") : $("nick")).focus();
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) { $("login-error").textContent = "Enter a nickname."; $("nick").focus(); return; }
    if (/[\s,*?!@]/.test(nick)) { $("login-error").textContent = "A nickname has no spaces or , * ? ! @."; return; }
    $("login-error").textContent = "";
    S.nick = nick;
    S.password = $("password").value;
    S.loginFailed = false;
    S.userQuit = false;
    S.everRegistered = false;
    S.convs = new Map();
    S.open = null;
    $("connect").disabled = true;
    if (S.ws) { const old = S.ws; S.ws = null; old.close(); }
    connect();
  });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("message");
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    submit(text);
  });
});
