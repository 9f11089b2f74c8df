// One joined room: its timeline, the seqs it already shows, and its event stream.
//
// The stream is the single source of the room's messages, the person's own included: sending
// only POSTs, and the message appears when the server hands it back with its seq. Every chat
// message carries its room's sequence number, so the timeline can refuse a message it already
// shows. The server resumes without gaps or duplicates, but a page must not trust that blindly:
// a replay after a reconnect that overlaps what is on screen is dropped here, by seq.
//
// Besides `message` and `presence`, the stream may say three things about the numbering:
//   truncated  {room, first_seq}   the resume point is older than anything the server keeps
//   gap        {room, from, to}    messages from..=to will never come on this stream
//   reset      {room, last_seq}    the server lost the numbering the page holds: the room's
//                                  timeline and seen seqs are forgotten, and what follows on the
//                                  same stream (the room's history afresh, then live) is shown

import * as api from './api.js';

/** How many timeline entries a room keeps; older ones scroll away for good. */
const MAX_ITEMS = 500;

/** A message this much older than the moment the room was opened is history, not news. */
const HISTORY_SLACK_MS = 2000;

export class Room {
  /**
   * @param {string} name the room's canonical name (as the server spells it)
   * @param {object} hooks `onItem(room, item)`, `onPresence(room, presence)`, `onStatus(room)`,
   *   `onReset(room)` (the timeline was emptied: redraw it)
   */
  constructor(name, hooks) {
    this.name = name;
    this.hooks = hooks;
    /** Timeline entries, oldest first: `{kind: 'message', seq, nick, text, ts}` or notices. */
    this.items = [];
    this.seen = new Set();
    /** The highest seq shown; a reopened stream resumes after it. */
    this.lastSeq = 0;
    /** Seqs at or below this one were trimmed from the timeline and are refused if replayed. */
    this.floor = 0;
    this.unread = 0;
    /**
     * `connecting` (never opened yet), `live`, `reconnecting` (the browser retries), `closed`
     * (it gave up), or `paused` (closed by the page to stay within the browser's connection limit).
     */
    this.status = 'connecting';
    this.stream = null;
    this.firstOpenedAt = 0;
  }

  /** Opens (or reopens) the room's event stream; opening it also joins the room. */
  open() {
    this.close();
    const stream = api.openStream(this.name, this.lastSeq);
    this.stream = stream;
    if (!this.firstOpenedAt) this.firstOpenedAt = Date.now();
    stream.onopen = () => this.setStatus('live');
    stream.onerror = () => {
      // CONNECTING: the browser is already retrying (after `retry:` ms) and will send
      // Last-Event-ID. CLOSED: it gave up (an HTTP error such as 401); the app decides.
      if (this.stream !== stream) return;
      this.setStatus(stream.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    };
    stream.addEventListener('message', (event) => this.onMessage(event.data));
    stream.addEventListener('presence', (event) => this.onPresence(event.data));
    stream.addEventListener('truncated', (event) => this.onTruncated(event.data));
    stream.addEventListener('gap', (event) => this.onGap(event.data));
    stream.addEventListener('reset', (event) => this.onReset(event.data));
  }

  /** Closes the stream, if any. The session stays a member until it leaves. */
  close() {
    if (this.stream) {
      this.stream.close();
      this.stream = null;
    }
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.hooks.onStatus(this);
  }

  onMessage(data) {
    const m = parse(data);
    if (!m) return;
    const seq = Number(m.seq);
    if (!Number.isSafeInteger(seq) || seq <= this.floor || this.seen.has(seq)) return;
    this.seen.add(seq);
    if (seq > this.lastSeq) this.lastSeq = seq;
    const ts = typeof m.ts === 'string' ? m.ts : '';
    const sent = Date.parse(ts);
    const fresh = !(sent < this.firstOpenedAt - HISTORY_SLACK_MS);
    this.add({ kind: 'message', seq, nick: String(m.nick), text: String(m.text), ts, fresh });
  }

  onPresence(data) {
    const p = parse(data);
    if (!p) return;
    this.add({ kind: 'presence', text: String(p.text || `${p.nick} ${p.kind}`) });
    this.hooks.onPresence(this, p);
  }

  onTruncated(data) {
    const t = parse(data);
    if (!t) return;
    const text = `older messages of #${this.name} are no longer kept; `
      + `the room goes on from message #${t.first_seq}`;
    this.add({ kind: 'notice', text });
  }

  onGap(data) {
    const g = parse(data);
    if (!g) return;
    const from = Number(g.from);
    const to = Number(g.to);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) return;
    // A reopened stream resumes after the gap: nothing in it will ever come.
    if (to > this.lastSeq) this.lastSeq = to;
    const range = from === to ? `#${from}` : `#${from} to #${to}`;
    this.add({ kind: 'notice', text: `some messages could not be delivered (${range})` });
  }

  onReset() {
    this.items = [];
    this.seen.clear();
    this.lastSeq = 0;
    this.floor = 0;
    this.unread = 0;
    this.hooks.onReset(this);
    this.add({ kind: 'notice', text: `the server lost the recent history of #${this.name}; it is shown afresh` });
  }

  /** Appends a timeline entry (a message or a notice) and tells the app. */
  add(item) {
    this.items.push(item);
    if (this.items.length > MAX_ITEMS) {
      for (const old of this.items.splice(0, this.items.length - MAX_ITEMS)) {
        if (old.kind === 'message') {
          this.seen.delete(old.seq);
          this.floor = Math.max(this.floor, old.seq);
        }
      }
    }
    this.hooks.onItem(this, item);
  }
}

function parse(data) {
  try {
    const value = JSON.parse(data);
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

/**
 * Browsers allow six HTTP/1.1 connections per origin, and event streams hold theirs open: a page
 * with a stream for every joined room would stall its own requests from the sixth room on. So at
 * most this many rooms stream at once; the least recently shown ones are paused (their stream
 * closed) and resume without gaps (`last_event_id`) the moment they are shown again. Their unread
 * counts wait until then.
 */
export const MAX_LIVE_STREAMS = 4;

/** Pauses the streams of the least recently shown `rooms` beyond the limit, never `current`'s. */
export function pauseStreams(rooms, current) {
  const all = [...rooms];
  const live = all.filter((room) => room.stream && room.name !== current);
  live.sort((a, b) => (a.shownAt || 0) - (b.shownAt || 0));
  const currentLive = all.some((room) => room.name === current && room.stream);
  const allowed = MAX_LIVE_STREAMS - (currentLive ? 1 : 0);
  for (const room of live.slice(0, Math.max(0, live.length - allowed))) {
    room.close();
    room.setStatus('paused');
  }
}
