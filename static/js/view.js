// DOM rendering. Every piece of text that came from a person or the server goes into the page
// through `textContent` (in `el` below), never `innerHTML`: a message such as
// `<img src=x onerror=alert(1)>` is shown as those characters and never becomes an element.
// Attribute values set here (data-*, title, datetime) are inert text as well.

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

/** A stable colour per nick, so a face is easy to follow down the list. */
function hue(nick) {
  let h = 0;
  for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function avatar(nick, className = 'avatar') {
  const initial = (nick[0] || '?').toUpperCase();
  const node = el('span', { className, text: initial, attrs: { 'aria-hidden': 'true' } });
  // CSSOM, not a style attribute: allowed by the page's Content-Security-Policy.
  node.style.setProperty('--hue', String(hue(nick)));
  return node;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A message's timestamp as a date, or null when it is missing or unreadable. */
function dateOf(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? null : date;
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

/** One timeline entry as a list item. `prev` is the entry before it, `me` the person's nick. */
export function renderItem(item, prev, me) {
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
    nick.style.setProperty('--hue', String(hue(item.nick)));
    const you = mine ? el('span', { className: 'you', text: 'you' }) : null;
    body.append(el('div', { className: 'msg-meta' }, [nick, you, time(item.ts)]));
  }
  const date = dateOf(item.ts);
  body.append(el('div', {
    className: 'msg-text',
    text: item.text,
    testid: 'message-text',
    attrs: date ? { title: full.format(date) } : {},
  }));
  li.append(body);
  return li;
}

function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

/** Replaces the whole message list with `items`, scrolled to the newest. */
export function renderTimeline(list, items, me, emptyText) {
  const nodes = items.map((item, i) => renderItem(item, items[i - 1], me));
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
  list.append(renderItem(item, prev, me));
  if (follow) list.scrollTop = list.scrollHeight;
}

let drawnRooms = '';

/** The sidebar: joined rooms (with unread counts) and the other rooms from `/rooms`. */
export function renderRooms(joinedList, otherList, { joined, current, counts }) {
  const joinedNames = new Set(joined.map((room) => room.name));
  const others = [...counts].filter(([name]) => !joinedNames.has(name));
  const shown = { joined: joined.length, others: others.length };
  // The list is redrawn only when something in it changed, so that the ten-second refresh
  // does not take the focus or the hover from under the person's pointer.
  const key = JSON.stringify([current, [...counts], joined.map((r) => [r.name, r.unread, r.status])]);
  if (drawnRooms === key) return shown;
  drawnRooms = key;
  joinedList.replaceChildren(...joined.map((room) => {
    const active = room.name === current;
    const button = el('button', {
      className: `room${active ? ' active' : ''}${room.unread ? ' has-unread' : ''}`,
      testid: 'room',
      data: { room: room.name, action: 'select' },
      attrs: { type: 'button', 'aria-current': active ? 'true' : 'false' },
    }, [
      el('span', { className: 'room-hash', text: '#', attrs: { 'aria-hidden': 'true' } }),
      el('span', { className: 'room-name', text: room.name }),
      room.unread ? unreadBadge(room.unread) : null,
      counts.has(room.name) ? memberCount(counts.get(room.name)) : null,
    ]);
    const leave = el('button', {
      className: 'room-leave',
      text: '×',
      testid: 'leave-room',
      data: { room: room.name, action: 'leave' },
      attrs: { type: 'button', title: `Leave ${room.name}`, 'aria-label': `Leave ${room.name}` },
    });
    const offline = room.status === 'reconnecting' || room.status === 'closed';
    return el('li', { className: offline ? 'room-offline' : '' }, [button, leave]);
  }));
  otherList.replaceChildren(...others.map(([name, members]) => el('li', {}, [
    el('button', {
      className: 'room room-other',
      testid: 'room-directory-item',
      data: { room: name, action: 'join' },
      attrs: { type: 'button', title: `Join ${name}` },
    }, [
      el('span', { className: 'room-hash', text: '#', attrs: { 'aria-hidden': 'true' } }),
      el('span', { className: 'room-name', text: name }),
      memberCount(members),
    ]),
  ])));
  return shown;
}

function unreadBadge(n) {
  const text = n > 99 ? '99+' : String(n);
  return el('span', { className: 'badge', text, testid: 'unread', attrs: { title: `${n} unread` } });
}

function memberCount(n) {
  return el('span', { className: 'room-count', text: String(n), attrs: { title: `${n} in the room` } });
}

/** The member list of the current room; `nicks` is null while unknown. */
export function renderMembers(list, nicks, me) {
  list.replaceChildren(...(nicks || []).map((nick) => el('li', {
    className: `member${nick === me ? ' mine' : ''}`,
    testid: 'member',
    data: { nick },
  }, [
    avatar(nick, 'avatar avatar-small'),
    el('span', { className: 'member-nick', text: nick }),
    nick === me ? el('span', { className: 'you', text: 'you' }) : null,
  ])));
}
