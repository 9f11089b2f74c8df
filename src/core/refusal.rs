//! Which chat rule refused a request, for the protocols that name each rule.
//!
//! A [`ChatError`](super::ChatError)'s kind is enough for the line protocol (it prints the
//! words) and for HTTP (it picks a status). IRC clients expect more: a numeric per rule (`474`
//! banned, `475` bad key, `482` not an operator...), which they act on (a client asks for the
//! key after a `475`). So the rules of rooms and users name themselves here, once, and each
//! adapter decides how much of that to show.
//!
//! The nicks a refusal names are kept as the text the numeric shows, not as [`Nick`]s: a
//! refusal is what an error says, and errors sit below the names (`Nick::parse` answers a
//! [`ChatError`](super::ChatError)), so this module imports nothing of the core's and the
//! core's modules import one another one way (`scripts/module-cycles.sh core`).
//!
//! [`Nick`]: super::Nick

/// The rule behind a refusal; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nobody by that nick is connected.
    NoSuchNick,
    /// No room by that name has members or history.
    NoSuchRoom,
    /// The session is not in the room it acts on.
    NotInRoom,
    /// The action needs a room operator.
    NotOperator,
    /// The nick acted on (as the numeric shows it) is not in the room.
    UserNotInRoom(String),
    /// The nick invited (as the numeric shows it) is in the room already.
    AlreadyInRoom(String),
    /// The room has as many members as its limit (`+l`).
    RoomFull,
    /// The room is invite-only (`+i`) and the session was not invited.
    InviteOnly,
    /// The session matches one of the room's bans (`+b`).
    Banned,
    /// The room has a key (`+k`) and the session did not give it.
    BadKey,
    /// The room does not take this message from this session (`+n`, `+m`, a ban).
    CannotSend,
    /// The action needs a server operator (`/oper`).
    NoPrivileges,
    /// `/oper` with a name or password that does not match.
    BadPassword,
    /// A mode letter rooms do not have.
    UnknownMode(char),
    /// A mode's parameter is not valid (a key with a space, a limit that is not a number).
    InvalidModeParam {
        /// The mode letter.
        mode: char,
        /// The parameter as given.
        param: String,
    },
    /// The user is connected to another instance, which this request cannot reach.
    OtherInstance,
}
