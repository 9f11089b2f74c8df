// The browser client's controller: who you are, which rooms you are in, which one you look at.
//
// The server owns the truth (membership, nicks, messages); this file keeps just enough state to
// draw it, and asks again whenever something may have changed: the room list on join, leave,
// presence and every ten seconds, the member list on presence in the current room.
//
//   api.js       one function per HTTP endpoint
//   room.js      a joined room: its timeline, seq dedupe and event stream
//   directory.js the room list and the current room's members, asked again when needed
//   commands.js  what a typed line does
//   recovery.js  coming back by itself after an outage or a server restart
//   page.js      the page's parts, drawn from the state; view.js and sidebar.js the pieces
//                (always textContent)
//   store.js     what survives a reload

import * as api from './api.js';
import { Room, pauseStreams } from './room.js';
import * as view from './view.js';
import * as page from './page.js';
import { commandRunner } from './commands.js';
import { recovery } from './recovery.js';
import * as store from './store.js';
import { directory, later } from './directory.js';

const { ui } = page;

const DIRECTORY_EVERY_MS = 10_000;

const state = {
  nick: null,
  /** Joined rooms by canonical name, in the order they were joined. */
  rooms: new Map(),
  current: null,
  /** What the message list shows while no room is selected: welcome and command replies. */
  lobby: [],
  /** Every room's member count, from the last `/rooms`. */
  counts: new Map(),
  timer: null,
};

/** The room list and the current room's members, asked again when they may have changed. */
const dir = directory(state, (err) => handleQuietError(err));
const { applyRooms, applyUsers } = dir;
const refreshDirectory = () => dir.refreshRooms();
const refreshMembers = () => dir.refreshMembers();

const roomHooks = {
  onItem(room, item) {
    if (room.name === state.current) {
      view.appendItem(ui.messages, item, room.items[room.items.length - 2], state.nick);
    } else if (item.kind === 'message' && item.fresh) {
      room.unread += 1;
      page.renderSidebar(state);
    }
  },
  onPresence(room, presence) {
    if (presence.kind === 'renamed' && presence.nick === state.nick && presence.new_nick) {
      setNick(presence.new_nick);
    }
    if (room.name === state.current) later('members', refreshMembers, 250);
    later('directory', refreshDirectory, 250);
  },
  onStatus(room) {
    // A stream the browser retries (`reconnecting`) or gave up on (`closed`, an HTTP error such
    // as 401 after a restart): is the server there, and is the session?
    if (room.status === 'reconnecting' || room.status === 'closed') link.suspect();
    page.renderConnection(state);
    page.renderSidebar(state);
  },
  onReset(room) {
    if (room.name === state.current) page.renderAll(state);
  },
};

// ---- session ------------------------------------------------------------------------------

async function boot() {
  wire();
  const saved = store.load();
  if (saved.nick) {
    // A reload (or a second tab) may still hold a live session cookie: `/nick` with the nick it
    // had is harmless and tells whether the session is alive.
    try {
      const reply = await api.command(`/nick ${saved.nick}`);
      return enterChat(reply.nick || saved.nick, saved.rooms, saved.current);
    } catch {
      // Expired, or the server restarted: connect again as the same nick, into the same rooms.
    }
    try {
      const reply = await api.connect(saved.nick);
      return enterChat(reply.nick, saved.rooms, saved.current);
    } catch (err) {
      const taken = err.status === 409 ? `${err.message}: pick another one, or wait a few seconds if it was yours` : '';
      return page.showLogin(taken, saved.nick);
    }
  }
  page.showLogin('', saved.nick || '');
}

async function onLogin(event) {
  event.preventDefault();
  ui.connectButton.disabled = true;
  try {
    const reply = await api.connect(ui.nickInput.value.trim());
    const saved = store.load();
    await enterChat(reply.nick, saved.rooms, saved.current);
  } catch (err) {
    page.showLogin(err.message, '');
  } finally {
    ui.connectButton.disabled = false;
  }
}

async function enterChat(nick, rooms = [], current = null) {
  teardown();
  state.nick = nick;
  const welcome = `welcome, ${nick}! Join a room on the left, or type /join ROOM. /help shows what you can do.`;
  state.lobby = [{ kind: 'notice', text: welcome }];
  page.showChat();
  store.save(state);
  page.renderAll(state);
  refreshDirectory();
  state.timer = setInterval(refreshDirectory, DIRECTORY_EVERY_MS);
  for (const name of rooms) await joinRoom(name, { select: false, quiet: true });
  const first = state.rooms.has(current) ? current : state.rooms.keys().next().value;
  if (first) selectRoom(first);
  (first ? ui.sendInput : ui.roomInput).focus();
}

/** Closes every stream and forgets the session's rooms. */
function teardown() {
  for (const room of state.rooms.values()) room.close();
  state.rooms.clear();
  state.current = null;
  clearInterval(state.timer);
}

/** The session cannot come back (its nick is taken now): back to the nick form, saying why. */
function sessionLost(message) {
  const nick = state.nick;
  teardown();
  state.nick = null;
  page.setLinkUp(true);
  page.showLogin(message, nick);
}

async function quit() {
  const nick = state.nick;
  teardown(); // first, so that the streams the server ends are not retried
  try {
    await api.command('/quit');
  } catch {
    // Gone already: signing out is done either way.
  }
  state.nick = null;
  store.forget();
  page.showLogin('', nick);
}

function setNick(nick) {
  state.nick = nick;
  store.save(state);
  page.renderAll(state);
}

// ---- rooms --------------------------------------------------------------------------------

/** At most `MAX_LIVE_STREAMS` rooms stream at once (see room.js); the current one always does. */
function capStreams() {
  pauseStreams(state.rooms.values(), state.current);
}

/**
 * Joins `name` (POST /command /join, which also says who is there), then opens its stream.
 * Resolves false when the server refused (the error is shown).
 */
async function joinRoom(name, { select = true, quiet = false } = {}) {
  name = name.trim();
  if (!name) return false;
  let reply;
  try {
    reply = await api.command(`/join ${name}`);
  } catch (err) {
    handleError(err);
    return false;
  }
  const canonical = reply.room || name.replace(/^#/, '').toLowerCase();
  let room = state.rooms.get(canonical);
  if (!room) {
    room = new Room(canonical, roomHooks);
    state.rooms.set(canonical, room);
    // The page's own words, not the netcat header: the history follows on the stream, with seqs.
    if (!quiet) room.items.push({ kind: 'notice', text: joinedText(canonical, reply.members) });
    room.shownAt = Date.now();
    room.open();
  }
  if (select) selectRoom(canonical, { tellServer: false });
  capStreams();
  store.save(state);
  page.renderSidebar(state);
  later('directory', refreshDirectory, 100);
  return true;
}

/** "You joined #general · 3 members here" (the members of every instance). */
function joinedText(name, members) {
  const n = Number(members);
  if (!Number.isSafeInteger(n) || n < 1) return `You joined #${name}`;
  return n === 1 ? `You joined #${name} · nobody else is here yet` : `You joined #${name} · ${n} members here`;
}

/** Shows `name`. The server is told too, so that `/users` and `/history` mean this room. */
function selectRoom(name, { tellServer = true } = {}) {
  const room = state.rooms.get(name);
  if (!room) return;
  state.current = name;
  room.unread = 0;
  room.shownAt = Date.now();
  if (!room.stream) room.open(); // a paused room resumes where it stopped
  capStreams();
  store.save(state);
  page.closeDrawers();
  page.renderAll(state);
  refreshMembers();
  if (tellServer) api.command(`/join ${name}`).catch(handleQuietError);
}

/** Closes the room's stream first (an open stream would join it again), then leaves. */
async function leaveRoom(name) {
  const room = state.rooms.get(name);
  room?.close();
  let lines = [`* You left #${name}`];
  try {
    await api.command(`/leave ${name}`);
  } catch (err) {
    if (err.sessionLost || err.unreachable) return handleError(err);
    lines = [`! ${err.message}`];
  }
  state.rooms.delete(name);
  if (state.current === name) {
    const next = state.rooms.keys().next().value;
    state.current = null;
    if (next) selectRoom(next);
  }
  store.save(state);
  page.renderAll(state);
  showLines(lines);
  later('directory', refreshDirectory, 100);
}

// ---- the timeline -------------------------------------------------------------------------

/** Adds a notice (`kind`: notice, reply, command or error) to what the person is looking at. */
function note(kind, text) {
  const item = { kind, text };
  const room = state.rooms.get(state.current);
  if (room) return room.add(item);
  state.lobby.push(item);
  view.appendItem(ui.messages, item, state.lobby[state.lobby.length - 2], state.nick);
}

/** Reply lines of the line protocol: `* ` notices, `! ` errors, anything else verbatim. */
function showLines(lines) {
  for (const line of lines) {
    if (line.startsWith('! ')) note('error', line.slice(2));
    else note('reply', line.startsWith('* ') ? line.slice(2) : line);
  }
}

/** A failed request: shown, and if the server or the session is gone, recovered from. */
function handleError(err) {
  if (err.unreachable) link.suspect();
  else if (err.sessionLost) link.resume();
  else note('error', err.message);
}

/** As `handleError`, for requests the person did not make (refreshes): nothing is shown. */
function handleQuietError(err) {
  if (err.unreachable) link.suspect();
  else if (err.sessionLost) link.resume();
}

/** The server answers again (true) or not (false): the banner, the send box. */
function setLinkUp(up) {
  page.setLinkUp(up);
  page.renderConnection(state);
}

const link = recovery({
  state, setLinkUp, setNick, capStreams, selectRoom, note, sessionLost,
  refresh() {
    refreshDirectory();
    refreshMembers();
  },
});

/** Typed lines: `/commands` and messages (commands.js decides which is which). */
const runLine = commandRunner({
  state, say: api.say, command: api.command, joinRoom, leaveRoom, quit, setNick, note, showLines,
  handleError, applyRooms, applyUsers, showHelp: () => note('help', ''),
});

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  ui.loginForm.addEventListener('submit', onLogin);
  ui.joinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = ui.roomInput.value;
    ui.roomInput.value = '';
    if (!(await joinRoom(name)) && !ui.roomInput.value) ui.roomInput.value = name;
  });
  ui.sendForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const line = ui.sendInput.value;
    if (!line.trim()) return;
    ui.sendInput.value = '';
    const ok = await runLine(line);
    // A refused message goes back into the box, so nothing typed is lost.
    if (!ok && !ui.sendInput.value) ui.sendInput.value = line;
    ui.sendInput.focus();
  });
  ui.sidebar.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const { action, room } = button.dataset;
    if (action === 'select') selectRoom(room);
    else if (action === 'leave') leaveRoom(room);
    else if (action === 'join') joinRoom(room);
  });
  ui.quitButton.addEventListener('click', quit);
  ui.drawerQuitButton.addEventListener('click', quit);
  page.wireDrawers();
}

boot();
