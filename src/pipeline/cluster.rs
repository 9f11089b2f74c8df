//! The cross-instance wiring: whether this instance is one of several, what it shares with the
//! others, and the one rule about it: what is shared lives in PostgreSQL.
//!
//! Three layers' options decide it together: the fan-out layer's `backend` (do messages reach
//! other instances?), the route layer's `directory` (are nicks and members looked up across
//! instances?) and the persist layer's `store` (is there a database every instance reaches?).
//! [`Cluster::of`] reads them once. `chatd --check` asks it for [`Cluster::problems`]; start-up
//! asks the same (a config changed by code never met `--check`) and then [`Cluster::start`]
//! opens the store and builds the sequencer, the bus and the directory. The rule and its wording
//! live here only.
//!
//! It lives in `pipeline/` rather than `backends/` because it reads three layers' config types,
//! and layers import backends, never the other way round; being wiring of the pipeline file,
//! `scripts/count-pipeline-lines.sh` counts it with the loader.
//!
//! What it teaches: a decision several parts depend on is made once, by one type, and handed to
//! them, instead of being derived again by each part from the others' options. The PostgreSQL
//! store's concrete type (which the poll backend queries directly) never leaves this file: the
//! persist layer gets the `Store` trait object only.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;

use super::config::{DirectoryMode, FanoutConfig, LayerKind, PersistConfig, RouteConfig};
use crate::backends::gaps::Settler;
use crate::backends::poll::{self, PollOptions};
use crate::backends::postgres::PostgresStore;
use crate::backends::postgres_directory::PostgresDirectory;
use crate::backends::sequencer::LocalSequencer;
use crate::backends::sqlite::SqliteStore;
use crate::backends::valkey::{self, Valkey, ValkeyOptions};
use crate::backends::{Background, Bus, Directory, Durability, LocalDirectory, Store};
use crate::core::{Hub, Sequencer};
use crate::layers::persist::OpenedStore;

/// What the pipeline's persist, fan-out and route options say about other instances.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'c> {
    /// The persist layer's store; `None` when there is no persist layer.
    store: Option<&'c PersistConfig>,
    /// The fan-out backend; `None` (no fan-out layer) counts as `local`.
    fanout: Option<&'c FanoutConfig>,
    /// The route layer's directory mode.
    directory: DirectoryMode,
    /// How long a shared directory lists the members of an instance that stopped beating.
    presence_ttl: Duration,
}

/// What [`Cluster::start`] built: the store and who numbers, carries and looks up.
#[derive(Debug)]
pub struct Wiring {
    /// The persist layer's store, opened and migrated.
    pub store: Option<OpenedStore>,
    /// Who numbers messages.
    pub sequencer: Arc<dyn Sequencer>,
    /// Who carries messages to other instances (`None`: nobody, `backend = "local"`).
    pub bus: Option<Arc<dyn Bus>>,
    /// Who knows which nick is taken and who is in which room.
    pub directory: Arc<dyn Directory>,
}

impl<'c> Cluster<'c> {
    /// The cluster of these options; a layer that is absent (or has problems of its own, in
    /// `--check`) is `None`.
    pub fn of(
        store: Option<&'c PersistConfig>,
        fanout: Option<&'c FanoutConfig>,
        route: Option<&'c RouteConfig>,
    ) -> Cluster<'c> {
        let route = route.cloned().unwrap_or_default();
        Cluster {
            store,
            fanout,
            directory: route.directory,
            presence_ttl: Duration::from_secs(route.presence_ttl_secs),
        }
    }

    /// The connection string of the PostgreSQL store, if that is the store.
    fn postgres_url(&self) -> Option<&'c str> {
        match self.store {
            Some(PersistConfig::Postgres { url, .. }) => Some(url),
            _ => None,
        }
    }

    /// Whether nicks and members are looked up in the directory all instances share: `auto`
    /// shares it when messages cross instances through a PostgreSQL store.
    pub fn shared_directory(&self) -> bool {
        let cross_instance = self.fanout.is_some_and(FanoutConfig::is_cross_instance);
        match self.directory {
            DirectoryMode::Auto => cross_instance && self.postgres_url().is_some(),
            DirectoryMode::Local => false,
            DirectoryMode::Shared => true,
        }
    }

    /// The PostgreSQL rule: a cross-instance fan-out backend and a shared directory need a store
    /// every instance reaches. Each breach, as the layer it is about and the sentence.
    pub fn problems(&self) -> Vec<(LayerKind, String)> {
        let store = match self.store {
            None => "none (there is no persist layer)",
            Some(PersistConfig::Sqlite { .. }) => {
                "sqlite, one file on one machine that other instances cannot share"
            }
            Some(PersistConfig::None {}) => "none, so nothing is shared",
            Some(PersistConfig::Postgres { .. }) => return Vec::new(),
        };
        // What needs it, why, and what else to write: the cross-instance backends keep the
        // per-room sequence there and fill their gaps from there.
        let fanout = match self.fanout {
            Some(FanoutConfig::Poll { .. }) => Some((
                "`backend = \"poll\"`",
                "the instances read each other's messages from the database and share one \
                 sequence counter per room there",
            )),
            Some(FanoutConfig::Valkey { .. }) => Some((
                "`backend = \"valkey\"`",
                "the instances fill the gaps a lost pub/sub message leaves by reading the shared \
                 store",
            )),
            Some(FanoutConfig::Local {}) | None => None,
        };
        let local = " with a database every instance reaches, or `backend = \"local\"` for a \
                     single instance";
        let fanout = fanout.map(|(what, why)| (LayerKind::Fanout, what, why, local));
        let directory = (self.directory == DirectoryMode::Shared).then_some((
            LayerKind::Route,
            "`directory = \"shared\"`",
            "the shared directory of nicks and members is a table there",
            ", or `directory = \"auto\"`",
        ));
        let needs = fanout.into_iter().chain(directory);
        needs
            .map(|(kind, what, why, instead)| {
                let problem = format!(
                    "{what} needs a `persist` layer with `store = \"postgres\"`, because {why}; \
                     the store here is {store}. Use `store = \"postgres\"`{instead}"
                );
                (kind, problem)
            })
            .collect()
    }

    /// Opens the store (connects, migrates) and builds the sequencer, the bus and the directory
    /// over it; the directory's heartbeat runs on `background`. The bus is not started: it
    /// needs the stack, built after this.
    ///
    /// # Errors
    /// When the options break the PostgreSQL rule ([`Cluster::problems`]), or a backend cannot
    /// be set up (a store unreachable, a schema newer than this chatd).
    pub async fn start(&self, hub: &Hub, background: &Background) -> anyhow::Result<Wiring> {
        if let Some((kind, problem)) = self.problems().into_iter().next() {
            anyhow::bail!("{kind} layer: {problem}");
        }
        let (store, postgres) = self.open_store().await?;
        let directory: Arc<dyn Directory> = match self.postgres_url() {
            Some(url) if self.shared_directory() => {
                Arc::new(PostgresDirectory::start(url, hub, self.presence_ttl, background).await?)
            }
            _ => Arc::new(LocalDirectory::new(hub.clone())),
        };
        let (sequencer, bus) = match (self.fanout, postgres, &store) {
            (Some(fanout), Some(postgres), Some(opened)) if fanout.is_cross_instance() => {
                let (sequencer, bus) = cross_instance(fanout, postgres, opened, hub).await?;
                (sequencer, Some(bus))
            }
            _ => {
                let numbered = store.as_ref().map(|opened| opened.store.clone());
                let local = LocalSequencer::new(numbered, hub.instance().clone());
                (Arc::new(local) as Arc<dyn Sequencer>, None)
            }
        };
        Ok(Wiring {
            store,
            sequencer,
            bus,
            directory,
        })
    }

    /// Opens the persist layer's store; the PostgreSQL one also as its concrete type, whose
    /// pool the cross-instance backends query (a clone shares the pool, so the store's
    /// `pool_size` bounds every connection this chatd opens to it).
    async fn open_store(&self) -> anyhow::Result<(Option<OpenedStore>, Option<PostgresStore>)> {
        let Some((durability, writer)) = self.store.and_then(PersistConfig::writer) else {
            return Ok((None, None));
        };
        let (store, postgres): (Arc<dyn Store>, _) = match self.store {
            Some(PersistConfig::Postgres { url, pool_size, .. }) => {
                let store = PostgresStore::connect(url, *pool_size)
                    .await
                    .context("persist layer: cannot use PostgreSQL (the `url` of the pipeline)")?;
                (Arc::new(store.clone()), Some(store))
            }
            Some(PersistConfig::Sqlite { path, .. }) => {
                let full_sync = durability == Durability::Sync;
                let store = SqliteStore::open(std::path::Path::new(path), full_sync)
                    .await
                    .with_context(|| format!("persist layer: cannot use SQLite file {path}"))?;
                (Arc::new(store), None)
            }
            Some(PersistConfig::None {}) | None => return Ok((None, None)),
        };
        let opened = OpenedStore {
            store,
            durability,
            writer,
        };
        Ok((Some(opened), postgres))
    }
}

/// The sequencer and bus of a cross-instance backend: both number with PostgreSQL's counter
/// rows and carry messages through the store's tables: `poll` alone, `valkey` through pub/sub
/// with the same poll underneath as its safety net and fallback.
async fn cross_instance(
    fanout: &FanoutConfig,
    postgres: PostgresStore,
    opened: &OpenedStore,
    hub: &Hub,
) -> anyhow::Result<(Arc<dyn Sequencer>, Arc<dyn Bus>)> {
    let (interval_ms, gap_wait_ms) = match fanout {
        FanoutConfig::Poll {
            interval_ms,
            gap_wait_ms,
        } => (*interval_ms, *gap_wait_ms),
        FanoutConfig::Valkey { gap_wait_ms, .. } => {
            let poll_ms = valkey::POLL_WHILE_DEGRADED.as_millis() as u64;
            (poll_ms, *gap_wait_ms)
        }
        FanoutConfig::Local {} => anyhow::bail!("fanout layer: `local` crosses no instance"),
    };
    let under_valkey = matches!(fanout, FanoutConfig::Valkey { .. });
    let gap_wait = Duration::from_millis(gap_wait_ms);
    let degraded = Arc::new(AtomicBool::new(false));
    let options = PollOptions {
        interval: Duration::from_millis(interval_ms),
        gap_wait,
        idle: under_valkey.then(|| (gap_wait, degraded.clone())),
    };
    let settler = Settler {
        store: opened.store.clone(),
        durability: opened.durability,
        wait: gap_wait,
    };
    let instance = hub.instance().clone();
    let (sequencer, poll) = poll::backend(postgres, options, settler, instance.clone())
        .await
        .context("fanout layer: cannot read the presence events")?;
    let bus: Arc<dyn Bus> = match fanout {
        FanoutConfig::Valkey { url, pool_size, .. } => {
            let (url, pool_size) = (url.clone(), *pool_size);
            let options = ValkeyOptions { url, pool_size };
            Arc::new(Valkey::connect(&options, instance, poll, degraded).await?)
        }
        _ => poll,
    };
    Ok((sequencer, bus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineConfig;
    use crate::pipeline::config::LayerConfig;
    use crate::pipeline::load::parse;
    use crate::pipeline::load::tests::{FULL, stack};

    fn config(text: &str) -> PipelineConfig {
        parse("t", text, &|_| None).unwrap()
    }

    fn cluster(config: &PipelineConfig) -> Cluster<'_> {
        Cluster::of(config.persist(), config.fanout(), config.route())
    }

    /// The full stack with a PostgreSQL store.
    fn on_postgres() -> String {
        let url = "store = \"postgres\"\nurl = \"postgres://h/db\"";
        stack(FULL).replace("store = \"none\"", url)
    }

    #[test]
    fn auto_shares_the_directory_only_when_messages_cross_instances_through_postgres() {
        let poll = config(&on_postgres().replace("\"local\"", "\"poll\""));
        assert!(cluster(&poll).shared_directory());
        assert!(!cluster(&config(&on_postgres())).shared_directory());
        assert!(!cluster(&config(&stack(FULL))).shared_directory());
    }

    #[test]
    fn postgres_breaks_no_rule_and_every_other_store_breaks_both() {
        let poll = config(&on_postgres().replace("\"local\"", "\"poll\""));
        assert!(cluster(&poll).problems().is_empty());
        // Made by code: `--check` would refuse it.
        let sqlite = "store = \"sqlite\"\npath = \"x.db\"";
        let mut sqlite = config(&stack(FULL).replace("store = \"none\"", sqlite));
        for layer in &mut sqlite.layers {
            match layer {
                LayerConfig::Route(route) => route.directory = DirectoryMode::Shared,
                LayerConfig::Fanout(fanout) => {
                    let (interval_ms, gap_wait_ms) = (100, 2000);
                    *fanout = FanoutConfig::Poll {
                        interval_ms,
                        gap_wait_ms,
                    };
                }
                _ => {}
            }
        }
        let kinds: Vec<_> = cluster(&sqlite)
            .problems()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(kinds, [LayerKind::Fanout, LayerKind::Route]);
    }

    #[tokio::test]
    async fn start_refuses_what_check_refuses_in_the_same_words() {
        let mut shared = config(&stack(FULL));
        for layer in &mut shared.layers {
            if let LayerConfig::Route(route) = layer {
                route.directory = DirectoryMode::Shared;
            }
        }
        let cluster = cluster(&shared);
        let background = Background::default();
        let err = cluster
            .start(&Hub::new("t"), &background)
            .await
            .unwrap_err();
        let (_, problem) = cluster.problems().remove(0);
        assert_eq!(err.to_string(), format!("route layer: {problem}"));
        assert!(problem.starts_with("`directory = \"shared\"` needs a `persist` layer"));
    }
}
