// The page's parts, found once by id, and how the app's state is drawn onto them. Drawing is
// always "from the state": each function redraws its part completely, so no part can drift from
// what the app knows. The pieces come from view.js (the timeline) and sidebar.js (rooms, members).

import * as view from './view.js';
import * as sidebar from './sidebar.js';

const IDS = [
  'login', 'login-form', 'nick-input', 'connect-button', 'login-error', 'chat', 'room-title',
  'room-subtitle', 'connection-state', 'connection-label', 'my-nick', 'sidebar', 'join-form',
  'room-input', 'joined-rooms', 'other-rooms', 'no-joined', 'no-others', 'messages', 'send-form',
  'send-input', 'send-button', 'members-panel', 'members', 'member-count', 'no-members',
  'quit-button', 'drawer-quit-button', 'toggle-rooms', 'toggle-members', 'scrim', 'offline-banner',
  'close-rooms', 'close-members', 'drawer-nick',
];

/** Every element the scripts touch, by camel-cased id: `ui.sendInput` is `#send-input`. */
export const ui = Object.fromEntries(IDS.map((id) => [
  id.replace(/-(\w)/g, (_, c) => c.toUpperCase()),
  document.getElementById(id),
]));

/** Redraws everything: after connecting, switching rooms or changing nick. */
export function renderAll(state) {
  const room = state.rooms.get(state.current);
  view.renderTimeline(ui.messages, room ? room.items : state.lobby, state.nick,
    room ? `This is the start of #${room.name}. Say hello!` : '');
  renderHeader(state);
  renderSidebar(state);
  renderMembers(state);
  renderConnection(state);
}

export function renderHeader(state) {
  const room = state.rooms.get(state.current);
  ui.myNick.textContent = state.nick || '';
  ui.drawerNick.textContent = state.nick || '';
  ui.roomTitle.textContent = room ? room.name : 'welcome';
  ui.roomTitle.classList.toggle('is-room', Boolean(room));
  const count = room && (state.counts.get(room.name) ?? room.members?.length);
  const members = count ? `${count} member${count === 1 ? '' : 's'}` : '';
  ui.roomSubtitle.textContent = room ? members : 'pick or create a room to start';
  ui.sendInput.placeholder = room ? `Message #${room.name}` : 'Type /join ROOM, or pick a room';
}

export function renderSidebar(state) {
  const joined = [...state.rooms.values()];
  const shown = sidebar.renderRooms(ui.joinedRooms, ui.otherRooms, {
    joined, current: state.current, counts: state.counts,
  });
  ui.noJoined.hidden = shown.joined > 0;
  ui.noOthers.hidden = shown.others > 0;
  const unread = joined.reduce((sum, room) => sum + room.unread, 0);
  ui.toggleRooms.classList.toggle('has-unread', unread > 0);
  const where = state.current ? `#${state.current} · ` : '';
  document.title = `${unread ? `(${unread}) ` : ''}${where}chatd`;
}

export function renderMembers(state) {
  const room = state.rooms.get(state.current);
  const nicks = room?.members || null;
  sidebar.renderMembers(ui.members, nicks, state.nick);
  ui.memberCount.textContent = nicks ? String(nicks.length) : '';
  ui.noMembers.hidden = Boolean(room);
}

/**
 * Whether the server answers: while it does not, a banner says so and the send box is off (what
 * was typed stays in it). The rest of the page stays usable to read.
 */
export function setLinkUp(up) {
  ui.offlineBanner.hidden = up;
  ui.chat.classList.toggle('offline', !up);
  ui.sendInput.disabled = !up;
  ui.sendButton.disabled = !up;
}

/** Offline while the server does not answer; else connected when every room's stream is open,
 * reconnecting while any is not. */
export function renderConnection(state) {
  const statuses = [...state.rooms.values()].map((room) => room.status);
  let status = 'connected';
  if (!ui.offlineBanner.hidden) status = 'offline';
  else if (statuses.some((s) => s === 'reconnecting' || s === 'closed')) status = 'reconnecting';
  else if (statuses.includes('connecting')) status = 'connecting';
  ui.connectionState.dataset.state = status;
  ui.connectionLabel.textContent = status === 'connected' || status === 'offline' ? status : `${status}…`;
}

/** The nick form, with `message` (an error or a farewell) under it. */
export function showLogin(message, nick) {
  ui.chat.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = message;
  ui.loginError.hidden = !message;
  if (nick && !ui.nickInput.value) ui.nickInput.value = nick;
  document.title = 'chatd';
  ui.nickInput.focus();
}

export function showChat() {
  ui.login.hidden = true;
  ui.chat.hidden = false;
}

/** The rooms and members drawers of narrow screens: a button each opens one; its × button, the
 * scrim and Escape close it. */
export function wireDrawers() {
  const close = () => toggle(null);
  const toggle = (name) => {
    for (const drawer of ['show-rooms', 'show-members']) {
      ui.chat.classList.toggle(drawer, drawer === name && !ui.chat.classList.contains(drawer));
    }
    ui.toggleRooms.setAttribute('aria-expanded', String(ui.chat.classList.contains('show-rooms')));
    ui.toggleMembers.setAttribute('aria-expanded', String(ui.chat.classList.contains('show-members')));
  };
  ui.toggleRooms.addEventListener('click', () => toggle('show-rooms'));
  ui.toggleMembers.addEventListener('click', () => toggle('show-members'));
  ui.scrim.addEventListener('click', close);
  ui.closeRooms.addEventListener('click', close);
  ui.closeMembers.addEventListener('click', close);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
  });
}

/** Closes whichever drawer is open. */
export function closeDrawers() {
  ui.chat.classList.remove('show-rooms', 'show-members');
}
