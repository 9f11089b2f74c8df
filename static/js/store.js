// What the page remembers across reloads and tabs, in localStorage: the nick, the joined rooms
// and the current one. Never the session token: that is an HttpOnly cookie no script can read.
// A reload asks the server whether the session is still alive (see `boot` in app.js) and, if so,
// opens the rooms again; after an expired session the next connect joins them again.

const KEY = 'chatd.client';

export function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY)) || {};
    return {
      nick: typeof saved.nick === 'string' ? saved.nick : null,
      rooms: Array.isArray(saved.rooms) ? saved.rooms.filter((r) => typeof r === 'string') : [],
      current: typeof saved.current === 'string' ? saved.current : null,
    };
  } catch {
    return { nick: null, rooms: [], current: null };
  }
}

export function save(state) {
  const saved = { nick: state.nick, rooms: [...state.rooms.keys()], current: state.current };
  try {
    localStorage.setItem(KEY, JSON.stringify(saved));
  } catch {
    // Storage full or disabled: the page works, it just forgets on reload.
  }
}

/** After signing out: the next visit starts from the nick form. */
export function forget() {
  localStorage.removeItem(KEY);
}
