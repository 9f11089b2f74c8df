// The HTTP adapter's API, and nothing else: one function per endpoint.
//
// The session is the `chatd_session` cookie that POST /connect sets (HttpOnly, SameSite=Strict):
// the browser sends it with every same-origin fetch and EventSource by itself, and no script on
// the page can read it, so even a successful script injection could not steal the session.

/** A refused request: `status` is the HTTP status, `message` the server's `error` text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }

  /** The session is unknown or expired (a server restart forgets them all): connect again. */
  get sessionLost() {
    return this.status === 401;
  }

  /** No HTTP answer at all: the server is down or the network is. */
  get unreachable() {
    return this.status === 0;
  }
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    // fetch only rejects when no HTTP answer came at all.
    throw new ApiError(0, 'cannot reach the server');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An empty or non-JSON body: the status alone tells what happened.
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data || {};
}

/** POST /connect: opens a session. An empty nick asks for a guest nick. → {session, nick} */
export function connect(nick) {
  return post('/connect', nick ? { nick } : {});
}

/** POST /command: runs a slash command. → {lines: [...], plus fields such as rooms, users} */
export function command(line) {
  return post('/command', { command: line });
}

/** POST /message: says `text` in `room`. The message comes back on the room's event stream. */
export function say(room, text) {
  return post('/message', { room, text });
}

/**
 * GET /messages/ROOM as an EventSource: the room's recent history, then live events. Opening it
 * joins the room. After a dropped connection the browser reconnects by itself and sends
 * Last-Event-ID, and the server resumes exactly after it. A fresh EventSource cannot send that
 * header, so when the page itself has to reopen a stream it passes the last seq it has as
 * `?last_event_id=`.
 */
export function openStream(room, lastSeq) {
  const path = `/messages/${encodeURIComponent(room)}`;
  return new EventSource(lastSeq > 0 ? `${path}?last_event_id=${lastSeq}` : path);
}

/** GET /healthz: whether the server answers at all (liveness, no session needed). */
export async function healthy() {
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    return response.ok;
  } catch {
    return false;
  }
}
