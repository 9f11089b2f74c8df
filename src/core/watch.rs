//! Who watches for whom: the nicks each session asked to be told about when they come online or
//! go offline (IRC's `MONITOR`, `/watch` on the line protocol).
//!
//! Kept both ways, so that a connect, quit or rename finds the sessions to tell in one lookup,
//! and a session's own list is there for `MONITOR L`. Bounded: at most [`MAX_WATCHED`] nicks per
//! session, and a session's watches go with it. Per instance: a user connecting to another
//! instance is not noticed here (a watch that starts finds the nick online anywhere, through the
//! directory).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::identity::SessionId;
use super::names::Nick;

/// The most nicks one session may watch.
pub const MAX_WATCHED: usize = 100;

/// Every watch of this instance; see the module docs.
#[derive(Debug, Default)]
pub struct Watches {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Nick key -> the sessions watching it.
    watchers: HashMap<String, BTreeSet<SessionId>>,
    /// Session -> the nicks it watches, as it wrote them.
    watched: HashMap<SessionId, Vec<Nick>>,
}

impl Watches {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `id` watches `nicks` too; returns those it could not add (its list is full).
    pub fn add(&self, id: SessionId, nicks: &[Nick]) -> Vec<Nick> {
        let mut inner = self.inner();
        let mut refused = Vec::new();
        for nick in nicks {
            let list = inner.watched.entry(id).or_default();
            if list.iter().any(|n| n.key() == nick.key()) {
                continue;
            }
            if list.len() >= MAX_WATCHED {
                refused.push(nick.clone());
                continue;
            }
            list.push(nick.clone());
            inner.watchers.entry(nick.key()).or_default().insert(id);
        }
        refused
    }

    /// `id` no longer watches `nicks`.
    pub fn remove(&self, id: SessionId, nicks: &[Nick]) {
        let mut inner = self.inner();
        for nick in nicks {
            let key = nick.key();
            if let Some(list) = inner.watched.get_mut(&id) {
                list.retain(|n| n.key() != key);
            }
            if let Some(set) = inner.watchers.get_mut(&key) {
                set.remove(&id);
                if set.is_empty() {
                    inner.watchers.remove(&key);
                }
            }
        }
    }

    /// `id` watches nobody any more (`MONITOR C`, or the session closed).
    pub fn clear(&self, id: SessionId) {
        let nicks = self.inner().watched.remove(&id).unwrap_or_default();
        self.remove(id, &nicks);
    }

    /// The nicks `id` watches, in the order it added them.
    pub fn list(&self, id: SessionId) -> Vec<Nick> {
        self.inner().watched.get(&id).cloned().unwrap_or_default()
    }

    /// The sessions watching `nick`.
    pub fn watchers(&self, nick: &Nick) -> Vec<SessionId> {
        let inner = self.inner();
        let set = inner.watchers.get(&nick.key());
        set.map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nicks(names: &[&str]) -> Vec<Nick> {
        names.iter().map(|n| Nick::parse(n).unwrap()).collect()
    }

    #[test]
    fn watches_are_kept_both_ways_and_go_with_their_session() {
        let watches = Watches::default();
        let (a, b) = (SessionId(1), SessionId(2));
        watches.add(a, &nicks(&["bob", "carol"]));
        watches.add(b, &nicks(&["BOB"]));
        assert_eq!(watches.watchers(&nicks(&["Bob"])[0]), [a, b]);
        watches.remove(b, &nicks(&["bob"]));
        assert_eq!(watches.watchers(&nicks(&["bob"])[0]), [a]);
        watches.clear(a);
        assert!(watches.watchers(&nicks(&["bob"])[0]).is_empty());
        assert!(watches.list(a).is_empty());
    }

    #[test]
    fn a_full_list_refuses_more() {
        let watches = Watches::default();
        let many: Vec<Nick> = (0..MAX_WATCHED + 2)
            .map(|i| Nick::parse(&format!("n{i}")).unwrap())
            .collect();
        assert_eq!(watches.add(SessionId(1), &many).len(), 2);
        assert_eq!(watches.list(SessionId(1)).len(), MAX_WATCHED);
    }
}
