//! `/watch` (IRC's `MONITOR`): being told when nicks come online or go offline.
//!
//! The route layer is where sessions open, close and change nick, so it is where watchers are
//! told (`Ctx::tell_watchers`), each with a `Direct` of kind `Online` in its queue. Watches are
//! this instance's (`core::watch`): a watch that starts asks the directory whether each nick is
//! online anywhere, but later comings and goings on other instances are not noticed.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use crate::core::{Direct, DirectKind, Event, Monitor, Nick, Outcome, Reply, Session};
use crate::layers::Inner;

impl<S: Inner> Ctx<'_, S> {
    pub(super) async fn monitor(
        &mut self,
        session: &Session,
        op: Monitor,
    ) -> Result<Reply, BoxError> {
        let watches = self.hub().watches();
        let (mut status_of, mut refused, mut list) = (Vec::new(), Vec::new(), Vec::new());
        match op {
            Monitor::Add(nicks) => {
                refused = watches.add(session.id, &nicks);
                status_of = nicks.into_iter().filter(|n| !refused.contains(n)).collect();
            }
            Monitor::Remove(nicks) => {
                watches.remove(session.id, &nicks);
                let names: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
                let text = format!("no longer watching {}", names.join(", "));
                return Ok(Reply::notice(text));
            }
            Monitor::Clear => {
                watches.clear(session.id);
                return Ok(Reply::notice("watching nobody"));
            }
            Monitor::List => list = watches.list(session.id),
            Monitor::Status => status_of = watches.list(session.id),
        }
        let (mut online, mut offline) = (Vec::new(), Vec::new());
        for nick in status_of {
            match self.find_user(&nick).await? {
                Some(user) => online.push(user.nick),
                None => offline.push(nick),
            }
        }
        let names = |nicks: &[Nick]| {
            nicks
                .iter()
                .map(Nick::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut shown = Vec::new();
        if !online.is_empty() {
            shown.push(format!("online: {}", names(&online)));
        }
        if !offline.is_empty() {
            shown.push(format!("offline: {}", names(&offline)));
        }
        if !refused.is_empty() {
            let max = crate::core::watch::MAX_WATCHED;
            shown.push(format!("not watched (at most {max}): {}", names(&refused)));
        }
        if !list.is_empty() {
            shown.push(format!("watching: {}", names(&list)));
        }
        let reply = Reply {
            events: shown.into_iter().map(Event::notice).collect(),
            ..Reply::default()
        };
        Ok(reply.with(Outcome::Watch {
            online,
            offline,
            refused,
            list,
        }))
    }

    /// Tells the sessions watching `nick` that it came online (`true`) or went offline.
    pub(super) fn tell_watchers(&self, nick: &Nick, online: bool) {
        for id in self.hub().watches().watchers(nick) {
            if let Some(watcher) = self.hub().sessions().get(id) {
                let kind = DirectKind::Online(online);
                let direct = Direct::new(nick.clone(), watcher.nick(), kind);
                let _ = watcher.deliver(Event::Direct(Arc::new(direct)));
            }
        }
    }
}
