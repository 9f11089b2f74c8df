//! `MONITOR` (IRCv3): the core's `/watch`, in IRC's numerics.
//!
//! `MONITOR + a,b` watches nicks and answers which are online (`730`, as `nick!user@host`) and
//! which are not (`731`); `-` stops, `C` clears, `L` lists (`732`, `733`), `S` tells the status
//! of every watched nick. Later comings and goings arrive as `730`/`731` from the core's queue
//! (`render::direct`). A list holds at most `MONITOR=100` nicks (`734` beyond).

use bytes::Bytes;

use super::connection::{Client, End};
use super::render;
use crate::core::watch::MAX_WATCHED;
use crate::core::{Command, Monitor, Nick, Outcome, UserCommand};

impl Client {
    /// `MONITOR <+|-|C|L|S> [nick,nick...]`.
    pub(super) async fn monitor(
        &mut self,
        sub: Option<&str>,
        targets: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        // A mask or an invalid nick is never online.
        let (mut nicks, mut invalid) = (Vec::new(), Vec::new());
        for target in targets.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            match Nick::parse(target) {
                Ok(nick) => nicks.push(nick),
                Err(_) => invalid.push(target.to_string()),
            }
        }
        let op = match (sub, nicks.is_empty() && invalid.is_empty()) {
            (Some("+"), false) => Monitor::Add(nicks),
            (Some("-"), false) => Monitor::Remove(nicks),
            (Some("C" | "c"), _) => Monitor::Clear,
            (Some("L" | "l"), _) => Monitor::List,
            (Some("S" | "s"), _) => Monitor::Status,
            _ => return Ok(vec![self.need_more("MONITOR")]),
        };
        let adding = matches!(op, Monitor::Add(_));
        let reply = match self.call(Command::User(UserCommand::Monitor(op))).await? {
            Ok(reply) => reply,
            Err(e) => return Ok(vec![self.notice(&e)]),
        };
        let Outcome::Watch {
            online,
            offline,
            refused,
            list,
        } = reply.outcome
        else {
            return Ok(Vec::new()); // `-` and `C` have no answer
        };
        let mut out = Vec::new();
        let join = |nicks: &[String]| nicks.join(",");
        if !online.is_empty() {
            let shown: Vec<String> = online.iter().map(|n| render::source(n.as_str())).collect();
            out.push(self.numeric("730").trailing(&join(&shown)).bytes());
        }
        let mut gone: Vec<String> = offline.iter().map(Nick::to_string).collect();
        if adding {
            gone.extend(invalid);
        }
        if !gone.is_empty() {
            out.push(self.numeric("731").trailing(&join(&gone)).bytes());
        }
        if !refused.is_empty() {
            let names: Vec<String> = refused.iter().map(Nick::to_string).collect();
            let line = self
                .numeric("734")
                .param(&MAX_WATCHED.to_string())
                .param(&join(&names));
            out.push(line.trailing("Monitor list is full").bytes());
        }
        if matches!(sub, Some("L" | "l")) {
            let names: Vec<String> = list.iter().map(Nick::to_string).collect();
            if !names.is_empty() {
                out.push(self.numeric("732").trailing(&join(&names)).bytes());
            }
            out.push(self.numeric("733").trailing("End of MONITOR list").bytes());
        }
        Ok(out)
    }
}
