// Who is where: every room with its member count (`/rooms`) and the members of the room being
// looked at (`/users ROOM`). The server owns these lists; the page asks again whenever they may
// have changed (a join, a leave, a presence event) and every ten seconds, and draws the answer.

import * as api from './api.js';
import * as page from './page.js';

/**
 * The two lists of `state`, refreshed and drawn. `onError(err)` gets a failed request (the app
 * recovers from an unreachable server or a lost session; nothing is shown for a refresh).
 */
export function directory(state, onError) {
  async function refreshRooms() {
    try {
      const reply = await api.command('/rooms');
      applyRooms(reply.rooms || []);
    } catch (err) {
      onError(err);
    }
  }

  function applyRooms(list) {
    state.counts = new Map(list.map((room) => [room.name, room.members]));
    page.renderSidebar(state);
    page.renderHeader(state);
  }

  async function refreshMembers() {
    const name = state.current;
    if (!name) return page.renderMembers(state);
    try {
      applyUsers(await api.command(`/users ${name}`));
    } catch (err) {
      onError(err);
    }
    return undefined;
  }

  function applyUsers(reply) {
    const room = state.rooms.get(reply.room);
    if (!room || !Array.isArray(reply.users)) return;
    room.members = reply.users;
    if (room.name === state.current) page.renderMembers(state);
  }

  return { refreshRooms, applyRooms, refreshMembers, applyUsers };
}

const pending = new Map();

/** Runs `task` once, `ms` from now, however often it is asked for in between. */
export function later(key, task, ms) {
  if (pending.has(key)) return;
  pending.set(key, setTimeout(() => {
    pending.delete(key);
    task();
  }, ms));
}
