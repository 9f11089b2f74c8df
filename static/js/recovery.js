// Coming back by itself: what the page does when the server stops answering, and when it is back.
//
// Two things can break under a page, and they look alike from inside it:
//   * the server is unreachable (stopped, restarting, the network is down): every request fails
//     without an HTTP answer and every event stream keeps retrying;
//   * the session is gone: the server answers, but `401 unknown or expired session`. A restarted
//     server has forgotten every session; an idle one expired.
// Any failed request or broken stream asks `suspect()`, which asks GET /healthz. While it gets no
// answer the page shows a banner and refuses to send (nothing typed is lost: it stays in the box),
// and asks again every second or so. Once the server answers, `resume()` checks the session and,
// if it is gone, connects again with the same nick, joins the same rooms and reopens each room's
// stream after the last seq the page shows: the server replays exactly what came after it, and
// the page's seq check drops anything it already shows. If somebody else took the nick meanwhile
// the person is asked for another one, with the reason.

import * as api from './api.js';

/** How long to wait between two health checks while the server is down (doubling from the first). */
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 5000;

/**
 * @param {object} app `state`, `setLinkUp(up)`, `setNick(nick)`, `capStreams()`,
 *   `selectRoom(name)`, `refresh()`, `note(kind, text)`, `sessionLost(message)`
 */
export function recovery(app) {
  let up = true;
  let probing = null;
  let resuming = null;

  /**
   * Asks whether the server answers; while it does not, shows that and asks again. Once it
   * answers, resumes (see below). Resolves when the server answers.
   */
  function suspect() {
    if (probing) return probing;
    probing = (async () => {
      let wait = FIRST_RETRY_MS;
      while (!(await api.healthy())) {
        if (up) {
          up = false;
          app.setLinkUp(false);
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, LAST_RETRY_MS);
      }
      if (!up) {
        up = true;
        app.setLinkUp(true);
      }
    })().finally(() => {
      probing = null;
    });
    probing.then(resume);
    return probing;
  }

  /** After an outage or a 401: the same session if it lives, else a new one like it. */
  function resume() {
    if (resuming || !app.state.nick) return resuming;
    resuming = (async () => {
      try {
        await api.command('/rooms');
      } catch (err) {
        if (err.sessionLost) return reconnect();
        if (err.unreachable) return suspect();
        return undefined;
      }
      // The session lives: only streams that the browser gave up on need reopening.
      for (const room of app.state.rooms.values()) {
        if (room.status === 'closed') room.open();
      }
      app.capStreams();
      return undefined;
    })().finally(() => {
      resuming = null;
    });
    return resuming;
  }

  async function reconnect() {
    const { state } = app;
    const nick = state.nick;
    let reply;
    try {
      reply = await api.connect(nick);
    } catch (err) {
      if (err.unreachable) return suspect();
      if (err.status === 409) {
        return app.sessionLost(`The server restarted and the nick ${nick} is taken now: pick another one`);
      }
      return app.sessionLost(err.message);
    }
    app.setNick(reply.nick);
    // Join every room again (a paused one too, so that it stays a member), then reopen the
    // streams that were open, each from the last seq the page shows.
    const rooms = [...state.rooms.values()];
    for (const room of rooms) {
      room.close();
      try {
        await api.command(`/join ${room.name}`);
      } catch (err) {
        app.note('error', `#${room.name}: ${err.message}`);
      }
    }
    for (const room of rooms) {
      if (room.status !== 'paused') room.open();
    }
    if (state.current) app.selectRoom(state.current);
    app.capStreams();
    app.refresh();
    return undefined;
  }

  return { suspect, resume, get up() { return up; } };
}
