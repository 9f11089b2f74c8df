//! The route layer's options (`kind = "route"`): what each one means, its default and its range,
//! read in one call per option (see `crate::config`).

use std::cmp::Ordering::Greater;

use serde::Serialize;
use strum::{EnumString, VariantNames};

use toml::de::DeValue;

use crate::config::{Expand, Reader};

/// Options of `kind = "route"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteConfig {
    /// Longest accepted chat message, in characters (Discord's limit is 2000).
    pub max_message_chars: usize,
    /// Where nicks and memberships are looked up; see [`DirectoryMode`].
    pub directory: DirectoryMode,
    /// With a shared directory: how long an instance's members stay listed after its last
    /// heartbeat (it beats every third of this). An instance that dies vanishes from `/users`
    /// elsewhere within this time. See `src/backends/directory.rs`.
    pub presence_ttl_secs: u64,
    /// Most rooms one session may be in at once; beyond it `/join` asks to `/leave` one first.
    pub max_rooms_per_session: usize,
    /// Most rooms this instance keeps; beyond it `/join` of a new room is refused (existing
    /// rooms can still be joined). See `core::rooms` for when a room is freed again.
    pub max_rooms: usize,
    /// Most rooms one IP address may have created that are in memory at once: one address
    /// cannot fill `max_rooms` by itself.
    pub max_rooms_per_ip: usize,
    /// A room nobody has been in for this long, whose history is stored, is evicted from memory
    /// (and reopened from the store when used again), in seconds. See `core::rooms`.
    pub room_idle_secs: u64,
    /// Server operators: who may `/oper NAME PASSWORD` (IRC's `OPER`), and then `/kill` and
    /// `/wallops`. None by default. Write passwords as `${VAR}` to keep them out of the file;
    /// `--check` shows them hidden.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opers: Vec<OperConfig>,
}

/// One server operator of [`RouteConfig::opers`].
#[derive(Clone, PartialEq, Eq)]
pub struct OperConfig {
    /// The name given to `/oper`.
    pub name: String,
    /// The password given to `/oper`.
    pub password: String,
}

/// Shown and serialized (by `--check`) without its password.
impl std::fmt::Debug for OperConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperConfig")
            .field("name", &self.name)
            .field("password", &HIDDEN)
            .finish()
    }
}

impl Serialize for OperConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut oper = serializer.serialize_struct("OperConfig", 2)?;
        oper.serialize_field("name", &self.name)?;
        oper.serialize_field("password", HIDDEN)?;
        oper.end()
    }
}

/// What stands for a password wherever the configuration is shown.
const HIDDEN: &str = "(hidden)";

/// Reads entry `n` of `opers`: a table `{ name = "...", password = "..." }`, neither empty.
fn oper(n: usize, value: &DeValue<'_>, expand: Expand<'_>) -> Result<OperConfig, String> {
    let entry = format!("option `opers` entry {n}");
    let DeValue::Table(table) = value else {
        return Err(format!(
            "{entry}: write a table, such as {{ name = \"admin\", password = \"${{CHATD_OPER_PASSWORD}}\" }}"
        ));
    };
    if let Some((key, _)) = table
        .iter()
        .find(|(key, _)| !matches!(key.get_ref().as_ref(), "name" | "password"))
    {
        let key = key.get_ref();
        return Err(format!(
            "{entry}: unknown option `{key}`; an operator takes: name, password"
        ));
    }
    let field = |name: &str| match table.get(name).map(|value| value.get_ref()) {
        Some(DeValue::String(text)) => expand(text).map_err(|e| format!("{entry}: {e}")),
        Some(_) => Err(format!("{entry}: `{name}` must be a string")),
        None => Ok(String::new()),
    };
    let oper = OperConfig {
        name: field("name")?,
        password: field("password")?,
    };
    if oper.name.trim().is_empty() || oper.password.is_empty() {
        return Err(format!("{entry}: `name` and `password` must not be empty"));
    }
    Ok(oper)
}

/// Which presence directory the route layer asks "is this nick free?" and "who is in this room?".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, EnumString, VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DirectoryMode {
    /// Shared (in PostgreSQL) when the pipeline runs several instances, that is with
    /// `store = "postgres"` and a fan-out backend other than `local`; local otherwise.
    #[default]
    Auto,
    /// This instance only, whatever the other layers say.
    Local,
    /// Shared in the persist layer's PostgreSQL, even with the `local` fan-out backend (members
    /// of every instance are listed, though messages stay on their instance): for tests and
    /// demonstrations. Requires `store = "postgres"`.
    Shared,
}

impl RouteConfig {
    /// Reads the options of a `kind = "route"` table.
    pub fn read(r: &mut Reader<'_, '_>) -> RouteConfig {
        let config = RouteConfig {
            // 0 would refuse every message.
            max_message_chars: r.int("max_message_chars", 1..=65_536, 2000),
            directory: r.choice("directory", DirectoryMode::Auto),
            // The heartbeat runs every third of it, so below 2 s it would beat several times a
            // second; beyond an hour a dead instance's users linger for too long.
            presence_ttl_secs: r.int("presence_ttl_secs", 2..=3600, 15),
            // At least one room, and a session's room list is scanned on every rename and quit.
            max_rooms_per_session: r.int("max_rooms_per_session", 1..=10_000, 50),
            // Each room keeps a history ring, so the number of rooms multiplies memory.
            max_rooms: r.int("max_rooms", 1..=10_000_000, 10_000),
            // At least one room (beyond `max_rooms` it changes nothing).
            max_rooms_per_ip: r.int("max_rooms_per_ip", 1..=10_000_000, 500),
            // At most a week: rooms that stay longer are `max_rooms`'s to bound.
            room_idle_secs: r.int("room_idle_secs", 1..=604_800, 300),
            opers: r.list("opers", oper),
        };
        let per_session = ("max_rooms_per_session", config.max_rooms_per_session);
        let why = "a session cannot be in more rooms than the server keeps";
        r.never(per_session, Greater, ("max_rooms", config.max_rooms), why);
        config
    }
}

impl Default for RouteConfig {
    fn default() -> Self {
        Reader::defaults(RouteConfig::read)
    }
}
