//! The chat core: sessions, rooms, messages and the types that flow through the layer stack.
//!
//! Nothing here knows about sockets, HTTP or databases (the seed's "core doesn't know about
//! sockets"). Adapters turn bytes into [`Request`]s and render [`Reply`]s and [`Event`]s; layers
//! (in `src/layers/`) implement the chat behaviour on top of this state.

pub mod address;
pub mod ask;
pub mod budget;
pub mod channel;
pub mod channels;
pub mod commands;
pub mod direct;
pub mod error;
pub mod event;
pub mod history;
pub mod hub;
pub mod identity;
pub mod latency;
pub mod message;
pub mod modes;
pub mod names;
pub mod outbound;
pub mod recent;
pub mod refusal;
pub mod reply;
pub mod request;
pub mod ring;
pub mod room;
pub mod rooms;
pub mod sequencer;
pub mod service;
pub mod session;
pub mod stats;
pub mod text;
pub mod users;
pub mod watch;

pub use address::AddressGroup;
pub use ask::{Answered, Ask, NextPage, OpenReplay, Say, ask};
pub use channel::{Channel, Rank, Topic};
pub use channels::Channels;
pub use commands::{Monitor, RoomCommand, UserCommand};
pub use direct::{Direct, DirectKind};
pub use error::{ChatError, ErrorKind, Refusal};
pub use event::{Event, Missed};
pub use history::{
    Bound, HistoryAnswer, HistoryQuery, HistoryWindow, Page, ReplayPage, StoredRoom,
};
pub use hub::Hub;
pub use identity::{Protocol, SessionId};
pub use message::{ChatMessage, MessageKind, Origin, Presence, PresenceKind};
pub use modes::{ChannelMode, ModeChange};
pub use names::{Nick, RoomName};
pub use outbound::{Inbox, Outbound};
pub use reply::{Connected, ModeAnswer, Outcome, Replayed, Reply, Sent};
pub use request::{Action, Command, Connect, OPEN_WINDOW, OpenRoom, Request};
pub use ring::Ring;
pub use room::{Gap, Room, Start};
pub use rooms::{Creation, Rooms, TooManyRooms};
pub use sequencer::Sequencer;
pub use service::{ChatService, end_of_pipeline};
pub use session::{Closer, Session, Sessions};
pub use stats::Stats;
pub use users::{Census, Departed, Profile, UserInfo, UserModes, Users};
