// DOM rendering of the lists around the conversation: the rooms on the left (joined ones with
// unread counts, the others from `/rooms`) and the members of the current room. Text goes in
// through `textContent` only, as in view.js.
//
// Two kinds of number sit next to a room, and they must not look alike: an unread count is the
// convention's filled pill (it asks to be read), a member count is quiet muted text after a
// small person icon (it only informs).

import { el, avatar } from './view.js';

const SVG = 'http://www.w3.org/2000/svg';

/** A small "person" glyph, drawn by the page's own stylesheet colour. */
function personIcon() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('aria-hidden', 'true');
  const head = document.createElementNS(SVG, 'circle');
  head.setAttribute('cx', '8');
  head.setAttribute('cy', '5');
  head.setAttribute('r', '3');
  const body = document.createElementNS(SVG, 'path');
  body.setAttribute('d', 'M2.5 14.5c.6-3.2 2.8-5 5.5-5s4.9 1.8 5.5 5');
  svg.append(head, body);
  return svg;
}

function memberCount(n) {
  const label = `${n} member${n === 1 ? '' : 's'}`;
  return el('span', {
    className: 'room-count',
    testid: 'member-count-of-room',
    attrs: { title: label, 'aria-label': label },
  }, [personIcon(), el('span', { text: String(n) })]);
}

function unreadBadge(n) {
  const text = n > 99 ? '99+' : String(n);
  return el('span', { className: 'badge', text, testid: 'unread', attrs: { title: `${n} unread` } });
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
