//! What a client reads once it is registered: `001`-`005`, the message of the day, its modes.
//!
//! `005` (`RPL_ISUPPORT`) is where a server says what it is, and clients believe it: the
//! tokens below describe chatd as it is (nicks and channel names, what `CHATHISTORY` accepts,
//! that no client-only tags are relayed), not as a generic IRC server would be.

use super::IrcOptions;
use super::commands::MAX_TARGETS;
use super::message::Line;
use crate::core::channel::MAX_LIST;
use crate::core::modes::KEY_LEN;
use crate::core::names::MAX_NAME_LEN;
use crate::core::watch::MAX_WATCHED;
use crate::layers::parse::MAX_HISTORY;

/// The version shown in `002` and `004`.
const VERSION: &str = concat!("chatd-", env!("CARGO_PKG_VERSION"));

/// The `005` tokens, in the order they are sent (several lines of at most 13 each).
fn isupport(options: &IrcOptions) -> Vec<String> {
    vec![
        // Nicks and channel names compare with ASCII case folding (`Nick::key`, `RoomName`).
        // User mode +B marks a bot (WHOIS 335, WHO flag B, a `bot` tag on what it sends).
        "BOT=B".into(),
        "CASEMAPPING=ascii".into(),
        format!("CHANLIMIT=#:{}", options.max_rooms_per_session),
        // Room modes (`core::modes`): lists, always a parameter, a parameter when set, flags.
        "CHANMODES=Ibe,k,l,imnst".into(),
        // `#` and a room name of up to 32 characters.
        format!("CHANNELLEN={}", MAX_NAME_LEN + 1),
        "CHANTYPES=#".into(),
        format!("CHATHISTORY={MAX_HISTORY}"),
        // Client-only tags (`+typing`...) would have nowhere to go: chat messages carry none.
        "CLIENTTAGDENY=*".into(),
        // LIST takes masks (M), negated masks (N) and member counts (U).
        "ELIST=MNU".into(),
        "EXCEPTS=e".into(),
        "INVEX=I".into(),
        format!("KEYLEN={KEY_LEN}"),
        format!("MAXLIST=beI:{MAX_LIST}"),
        // MONITOR (the core's /watch), at most this many nicks.
        format!("MONITOR={MAX_WATCHED}"),
        "MSGREFTYPES=msgid,timestamp".into(),
        "NETWORK=chatd".into(),
        format!("NICKLEN={MAX_NAME_LEN}"),
        // A room's first member operates it; operators may voice others.
        "PREFIX=(ov)@+".into(),
        format!(
            "TARGMAX=JOIN:,PART:,NAMES:,KICK:{MAX_TARGETS},PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},WHOIS:1"
        ),
        // Lines that are not UTF-8 are refused, as on the other protocols.
        "UTF8ONLY".into(),
        // WHO takes IRCv3's %fields.
        "WHOX".into(),
    ]
}

/// The message of the day: how IRC maps onto chatd, for a person reading it in a client.
const MOTD: &[&str] = &[
    "chatd: the same rooms as netcat (nc) and browser users. The room general is #general.",
    "Nicks: 1 to 32 of A-Z a-z 0-9 _ -. Channels: # and 1 to 32 of a-z 0-9 _ -.",
    "Joining a channel shows its last messages; CHATHISTORY (IRCv3) reads further back.",
    "A channel's first member operates it (MODE, KICK, INVITE, TOPIC); /msg works as PRIVMSG.",
];

/// The lines of a successful registration of `nick` (`user` as given in `USER`).
pub fn welcome(options: &IrcOptions, nick: &str, user: &str) -> Vec<Line> {
    let server = &*options.server_name;
    let numeric = |code: &str| Line::new(server, code).param(nick);
    let mut lines = vec![
        numeric("001").trailing(&format!(
            "Welcome to the chatd IRC network, {nick}!{user}@{}",
            super::render::HOST
        )),
        numeric("002").trailing(&format!("Your host is {server}, running {VERSION}")),
        numeric("003").trailing("This server speaks IRC over chatd's shared chat stack"),
        numeric("004")
            .param(server)
            .param(VERSION)
            .param("Biow")
            .param("Ibeiklmnostv")
            .param("Ibeklov"),
    ];
    let tokens = isupport(options);
    for chunk in tokens.chunks(13) {
        let mut line = numeric("005");
        for token in chunk {
            line = line.param(token);
        }
        lines.push(line.trailing("are supported by this server"));
    }
    lines.push(numeric("375").trailing(&format!("- {server} Message of the day -")));
    for text in MOTD {
        lines.push(numeric("372").trailing(&format!("- {text}")));
    }
    lines.push(numeric("376").trailing("End of /MOTD command"));
    lines.push(numeric("221").param("+"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn registration_sends_001_to_005_the_motd_and_modes() {
        let options = IrcOptions {
            server_name: Arc::from("irc.test"),
            ping: Duration::from_secs(60),
            queue: crate::core::outbound::QueueLimits::events(8),
            max_rooms_per_session: 50,
            join_replay: 10,
        };
        let lines: Vec<String> = welcome(&options, "alice", "al")
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes()).into_owned())
            .collect();
        assert_eq!(
            lines[0],
            ":irc.test 001 alice :Welcome to the chatd IRC network, alice!al@chatd\r\n"
        );
        let codes: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(&codes[..5], ["001", "002", "003", "004", "005"]);
        assert!(lines[4].contains(" CHANLIMIT=#:50 "), "{}", lines[4]);
        assert!(lines.iter().any(|l| l.contains(" CHATHISTORY=100 ")));
        assert_eq!(codes.last(), Some(&"221"));
        assert!(codes.contains(&"376"));
    }
}
