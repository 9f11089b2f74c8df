//! The type every layer, adapter and backend passes requests through: the whole layer stack,
//! type-erased, and the service at its bottom.

use futures_util::future::{Ready, ready};
use tower::BoxError;
use tower::util::BoxCloneSyncService;

use super::{Reply, Request};

/// The whole layer stack, type-erased: what both adapters call. Built once at start-up (by
/// `pipeline::build`); each connection works on its own clone.
pub type ChatService = BoxCloneSyncService<Request, Reply, BoxError>;

/// The bottom of every stack: whatever reaches it was not for any layer, and gets an empty reply.
pub fn end_of_pipeline(_req: Request) -> Ready<Result<Reply, BoxError>> {
    ready(Ok(Reply::default()))
}
