//! The pipeline: a TOML file that decides which layers run, in which order, with which backends.
//!
//! * [`config`]: the typed shape of the file;
//! * [`env`](mod@env): `${VAR}` and `${VAR:-default}` in string values;
//! * [`load`]: reading and validating a file, reporting every problem at once;
//! * [`describe`]: the summary `chatd --check` prints, and the instance name;
//! * [`build`](mod@build): turning a valid config into one [`ChatService`].
//!
//! Phases 1 to 3 of the seed are different files in `pipelines/`, not different code.

pub mod build;
pub mod config;
pub mod describe;
pub mod env;
pub mod load;

use tower::BoxError;
use tower::util::BoxCloneSyncService;

use crate::core::{Reply, Request};

/// The whole layer stack, type-erased: what both adapters call. Built once at start-up; each
/// connection works on its own clone.
pub type ChatService = BoxCloneSyncService<Request, Reply, BoxError>;

pub use build::{Built, assemble, build};
pub use config::PipelineConfig;
