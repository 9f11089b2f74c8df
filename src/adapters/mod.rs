//! Adapters: protocols in, core types out. No chat logic lives here.
//!
//! Each adapter turns what its clients send into [`Request`](crate::core::Request)s for the one
//! shared stack, and renders the [`Reply`](crate::core::Reply)s and
//! [`Event`](crate::core::Event)s that come back. The words users read are decided by the core,
//! so netcat and browser users see the same messages and the same errors.

pub mod http;
pub mod lines;
pub mod tcp;
