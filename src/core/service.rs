//! The type every layer, adapter and backend passes requests through: the whole layer stack,
//! type-erased, and the service at its bottom.

use futures_util::future::{Ready, ready};
use tower::BoxError;
use tower::util::BoxCloneSyncService;

use super::error::ChatError;
use super::reply::Reply;
use super::request::{Action, Request};

/// The whole layer stack, type-erased: what both adapters call. Built once at start-up (by
/// `pipeline::build`); each connection works on its own clone.
pub type ChatService = BoxCloneSyncService<Request, Reply, BoxError>;

/// The bottom of every stack: whatever reaches it was not for any layer, and gets an empty reply.
/// Except a `Connect`: an empty reply would open no session, and the adapter asking (see
/// `core::ask`) must be told why rather than guess.
pub fn end_of_pipeline(req: Request) -> Ready<Result<Reply, BoxError>> {
    match req.action {
        Action::Connect(_) => ready(Err(ChatError::unavailable(
            "server error: no layer of this pipeline opens sessions",
        )
        .into())),
        _ => ready(Ok(Reply::default())),
    }
}
