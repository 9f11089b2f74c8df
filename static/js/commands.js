// What a typed line does. A line starting with `/` is a command for POST /command, whose reply
// lines are shown in the message list; `//text` is the message `/text` (as on netcat); anything
// else is a message for the current room, POSTed to /message.
//
// Most commands are passed through as typed, so the browser learns a new server command without
// a change here. A few also change what the page shows, and go through the app instead:
//   /join ROOM            the app opens the room's event stream and shows it
//   /leave [ROOM], /part  the app closes the stream first (an open stream would join again)
//   /quit                 the app signs out
//   /help                 the page shows its own help (the netcat list talks about netcat)
// and the structured fields of a reply (`nick`, `rooms`, `users`, `closed`) update the page.

/**
 * Builds `runLine(line) → Promise<boolean>` over the app's actions. It resolves false when the
 * line was refused and should go back into the send box.
 */
export function commandRunner(app) {
  async function say(text) {
    if (!app.state.current) {
      app.note('error', 'join a room first: /join ROOM');
      return false;
    }
    try {
      await app.say(app.state.current, text);
      return true;
    } catch (err) {
      app.handleError(err);
      return false;
    }
  }

  async function command(line) {
    const words = line.trim().split(/\s+/);
    const verb = words[0].toLowerCase();
    const args = words.slice(1);
    app.note('command', line.trim());
    if (verb === '/join' && args.length === 1) {
      await app.joinRoom(args[0]);
      return true; // a refusal is shown; the command need not be typed again
    }
    if ((verb === '/leave' || verb === '/part') && args.length <= 1) {
      const target = args.length ? args[0].replace(/^#/, '').toLowerCase() : app.state.current;
      if (target) {
        await app.leaveRoom(target);
        return true;
      }
    }
    if (verb === '/help' && args.length === 0) {
      app.showHelp();
      return true;
    }
    if (verb === '/quit' && args.length === 0) {
      await app.quit();
      return true;
    }
    let reply;
    try {
      reply = await app.command(line.trim());
    } catch (err) {
      app.handleError(err);
      return true; // the command was run; its error is shown, no need to retype it
    }
    app.showLines(reply.lines || []);
    if (typeof reply.nick === 'string') app.setNick(reply.nick);
    if (Array.isArray(reply.rooms)) app.applyRooms(reply.rooms);
    if (Array.isArray(reply.users)) app.applyUsers(reply);
    if (reply.closed) await app.quit();
    return true;
  }

  return function runLine(line) {
    if (line.startsWith('//')) return say(line.slice(1));
    if (line.startsWith('/')) return command(line);
    return say(line);
  };
}
