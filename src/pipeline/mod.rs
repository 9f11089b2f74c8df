//! The pipeline: a TOML file that decides which layers run, in which order, with which backends.
//!
//! * [`config`]: the typed shape of the file (each layer's own options type lives with the
//!   layer, read with `crate::config`'s reader);
//! * [`env`](mod@env): `${VAR}` and `${VAR:-default}` in string values;
//! * [`load`]: reading and checking a file, reporting every problem at once ([`report`] words
//!   them, `graph.rs` checks the stack as a whole);
//! * [`describe`]: the summary `chatd --check` prints, and the instance name;
//! * [`cluster`]: whether the instance is one of several, the rule that what they share lives
//!   in PostgreSQL, and the store, sequencer, bus and directory that follow;
//! * [`build`](mod@build): turning a valid config into one [`ChatService`].
//!
//! Phases 1 to 3 of the seed are different files in `pipelines/`, not different code. Nothing
//! below the pipeline (layers, backends, core) imports it: it only composes them.

pub mod build;
pub mod cluster;
pub mod config;
pub mod describe;
pub mod env;
mod graph;
pub mod load;
pub mod report;

pub use crate::core::ChatService;
pub use build::{Built, assemble, build};
pub use config::PipelineConfig;
