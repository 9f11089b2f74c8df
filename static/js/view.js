// DOM rendering of the timeline. Every piece of text that came from a person or the server goes
// into the page through `textContent` (in `el` below), never `innerHTML`: a message such as
// `<img src=x onerror=alert(1)>` is shown as those characters and never becomes an element.
// Attribute values set here (data-*, title, datetime, href) are inert text as well; the only
// links made are http(s) URLs that `new URL` itself parsed (see `linkify`), so a message cannot
// smuggle in a `javascript:` link.

/** Creates an element: `text` becomes its textContent, `data` its data-* attributes. */
export function el(tag, { className, text, testid, data, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  if (testid) node.dataset.testid = testid;
  for (const [key, value] of Object.entries(data || {})) node.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

/**
 * A stable colour per nick, so a face is easy to follow down the list. The nick is hashed with
 * FNV-1a, which changes every bit for a one-letter change, and the hash picks one of 16 hues
 * 22.5° apart and one of two shades: `alice1` and `alice2` land far apart, where a sum of
 * character codes gave them neighbouring hues.
 */
export function palette(nick) {
  let h = 0x811c9dc5;
  for (const ch of nick.toLowerCase()) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return { hue: (h % 16) * 22.5, shade: (h >>> 4) % 2 };
}

function colour(node, nick) {
  const { hue, shade } = palette(nick);
  // CSSOM, not a style attribute: allowed by the page's Content-Security-Policy.
  node.style.setProperty('--hue', String(hue));
  node.dataset.shade = String(shade);
}

export function avatar(nick, className = 'avatar') {
  const initial = (nick[0] || '?').toUpperCase();
  const node = el('span', { className, text: initial, attrs: { 'aria-hidden': 'true' } });
  colour(node, nick);
  return node;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const longDay = new Intl.DateTimeFormat(undefined, {
  weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
});

/** A message's timestamp as a date, or null when it is missing or unreadable. */
function dateOf(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The local calendar day of a date, as `YYYY-M-D`: what a date separator compares. */
function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

/** "Today", "Yesterday" or the full date, for a separator. */
export function dayLabel(date, now = new Date()) {
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return 'Today';
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  return longDay.format(date);
}

function time(ts) {
  const date = dateOf(ts);
  if (!date) return null;
  return el('time', { text: clock.format(date), attrs: { datetime: ts, title: full.format(date) } });
}

/** Consecutive messages from one nick within five minutes share one header. */
function continues(prev, item) {
  return prev && prev.kind === 'message' && prev.nick === item.nick
    && Date.parse(item.ts) - Date.parse(prev.ts) < 5 * 60 * 1000;
}

/** http(s) URLs in running text; trailing punctuation is the sentence's, not the link's. */
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** `text` as text nodes and `<a>` elements for its http(s) links, opened in a new tab. */
export function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const raw = match[0].replace(TRAILING, '');
    let url;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    parts.push(text.slice(last, match.index));
    parts.push(el('a', {
      text: raw,
      testid: 'message-link',
      attrs: { href: url.href, target: '_blank', rel: 'noopener noreferrer' },
    }));
    last = match.index + raw.length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== '');
}

/** The page's own help: what a person can do here, rather than the netcat command list. */
const HELP = [
  ['Enter', 'sends your message to the room you are looking at'],
  ['/join ROOM', 'joins a room (or creates it), as the Join box of the rooms list does'],
  ['/leave', 'leaves the current room; the × next to a room leaves that one'],
  ['/nick NAME', 'changes your nick (1 to 32 of A-Z a-z 0-9 _ -)'],
  ['/users', 'lists who is in the room; the Members panel shows them too'],
  ['/rooms', 'lists every room and how many people are in it'],
  ['/history N', 'shows the last N messages of the room (up to 100)'],
  ['//text', 'sends a message that starts with /'],
  ['Sign out', 'the button at the top right (on a phone: in the rooms menu ☰) ends your session'],
];

function renderHelp() {
  const rows = HELP.map(([what, does]) => el('div', { className: 'help-row' }, [
    el('dt', {}, [el('code', { text: what })]),
    el('dd', { text: does }),
  ]));
  return el('li', { className: 'note note-help', testid: 'help' }, [
    el('strong', { text: 'What you can do here' }),
    el('dl', {}, rows),
  ]);
}

/** One timeline entry as a list item. `prev` is the entry before it, `me` the person's nick. */
export function renderItem(item, prev, me) {
  if (item.kind === 'help') return renderHelp();
  if (item.kind !== 'message') {
    const testid = item.kind === 'error' ? 'error' : 'notice';
    return el('li', { className: `note note-${item.kind}`, testid }, [
      el('span', { className: 'note-text', text: item.text }),
    ]);
  }
  const mine = item.nick === me;
  const cont = continues(prev, item);
  const li = el('li', {
    className: `msg${mine ? ' mine' : ''}${cont ? ' cont' : ''}`,
    testid: 'message',
    data: { seq: item.seq, nick: item.nick },
  });
  li.append(cont ? el('span', { className: 'avatar-gap' }) : avatar(item.nick));
  const body = el('div', { className: 'msg-body' });
  if (!cont) {
    const nick = el('span', { className: 'msg-nick', text: item.nick, testid: 'message-nick' });
    colour(nick, item.nick);
    const you = mine ? el('span', { className: 'you', text: 'you' }) : null;
    body.append(el('div', { className: 'msg-meta' }, [nick, you, time(item.ts)]));
  }
  const date = dateOf(item.ts);
  body.append(el('div', {
    className: 'msg-text',
    testid: 'message-text',
    attrs: date ? { title: full.format(date) } : {},
  }, linkify(item.text)));
  li.append(body);
  return li;
}

/** A separator before the first message of each calendar day, or null. `list` remembers the day
 * of the last message drawn, so that appending needs no look back. */
function separator(list, item) {
  const date = item.kind === 'message' ? dateOf(item.ts) : null;
  if (!date || list.dataset.day === dayKey(date)) return null;
  list.dataset.day = dayKey(date);
  return el('li', { className: 'day', testid: 'day-separator', attrs: { role: 'separator' } }, [
    el('span', { text: dayLabel(date) }),
  ]);
}

function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

/** Replaces the whole message list with `items`, scrolled to the newest. */
export function renderTimeline(list, items, me, emptyText) {
  delete list.dataset.day;
  const nodes = [];
  items.forEach((item, i) => {
    const day = separator(list, item);
    if (day) nodes.push(day);
    // After a separator a message starts a new group: its header is shown again.
    nodes.push(renderItem(item, day ? null : items[i - 1], me));
  });
  if (nodes.length === 0 && emptyText) {
    nodes.push(el('li', { className: 'empty-room', text: emptyText }));
  }
  list.replaceChildren(...nodes);
  list.scrollTop = list.scrollHeight;
}

/** Appends one entry; follows the conversation only if the reader was already at the bottom. */
export function appendItem(list, item, prev, me) {
  const follow = nearBottom(list) || (item.kind === 'message' && item.nick === me);
  list.querySelector('.empty-room')?.remove();
  const day = separator(list, item);
  if (day) list.append(day);
  list.append(renderItem(item, day ? null : prev, me));
  if (follow) list.scrollTop = list.scrollHeight;
}
