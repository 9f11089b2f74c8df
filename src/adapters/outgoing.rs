//! What a connection has to write next: whole lines, in order, resumed where a short write
//! stopped.
//!
//! The TCP adapter pushes one buffer per turn of its loop: a reply's lines, or the lines of the
//! events it took from its queue (a lone chat message is its shared rendered line, several are
//! copied into one buffer: see `tcp::take_lines`). [`Outgoing::write_to`] hands whatever is
//! waiting to the kernel in one call, `send` for one buffer and `writev` for several (a reply and
//! a batch of events), and takes off what was written; a short write (the socket buffer filled)
//! is resumed where it stopped, inside a line if need be, and [`Outgoing::mid_line`] says so, so
//! that a farewell starts on a line of its own.
//!
//! Why not one `writev` of every chat message's shared buffer, with no copy at all? It was tried:
//! a `perf` profile of chatd under the race's workload B then showed the `writev` path's own work
//! in the kernel (`_copy_from_iter` over sixty-odd iovecs of fifty bytes, `vfs_writev`,
//! `fdget_pos`) at about a tenth of chatd's samples, as much as the allocation and copying it was
//! meant to save. So a batch is one buffer again, allocated once at a size that holds it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

/// Queued events a connection takes in one turn at most (`Inbox::recv_batch`), by what the queue
/// charges them (their text plus `outbound::EVENT_OVERHEAD`): about 64 KiB of lines or fewer.
/// Both line adapters (TCP and IRC) take their events this way.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Buffers handed to one `writev` at most (Linux takes up to 1,024; 64 lines of chat are already
/// far more than one syscall's worth of overhead).
pub const MAX_SLICES: usize = 64;

/// Lines waiting to be written, in order (see the module docs).
#[derive(Debug, Default)]
pub struct Outgoing {
    parts: VecDeque<Bytes>,
    /// The last byte written so far, to tell whether a write stopped inside a line.
    last: Option<u8>,
}

impl Outgoing {
    /// Queues `bytes` (whole lines) behind what is already waiting.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.parts.push_back(bytes);
        }
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether what reached the socket so far stops inside a line (a farewell must then start
    /// on a line of its own).
    pub fn mid_line(&self) -> bool {
        self.last.is_some_and(|b| b != b'\n')
    }

    /// One `writev` of what is waiting; the bytes written are taken off the front. Cancel-safe:
    /// nothing is taken off unless the write happened. `Ok(0)` means the peer is gone.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<usize> {
        // The list of slices is built on the stack inside each poll, not kept in the future:
        // this future is part of every connection's, idle or not.
        let written = poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, part) in slices.iter_mut().zip(&self.parts) {
                *slot = IoSlice::new(part);
                count += 1;
            }
            let writer = Pin::new(&mut *writer);
            match count {
                1 => writer.poll_write(cx, &self.parts[0]),
                _ => writer.poll_write_vectored(cx, &slices[..count]),
            }
        })
        .await?;
        self.advance(written);
        Ok(written)
    }

    /// Drops the first `n` bytes.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.parts.front_mut() else {
                break;
            };
            let step = n.min(front.len());
            self.last = Some(front[step - 1]);
            front.advance(step);
            n -= step;
            if front.is_empty() {
                self.parts.pop_front();
            }
        }
        if self.parts.is_empty() {
            // Between writes a connection keeps no list: most connections are idle most of the
            // time, and 128 bytes each is 1.3 MB for 10,000 of them; the next write allocates
            // one again, a few tens of nanoseconds beside the system call.
            self.parts = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, like a socket whose buffer is nearly
    /// full.
    struct Trickle {
        limit: usize,
        got: Vec<u8>,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - n);
                self.got.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.limit {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn short_writes_resume_where_they_stopped_and_say_when_inside_a_line() {
        let mut out = Outgoing::default();
        for line in ["[a] x: one\n", "[a] y: two\n", "[a] z: three\n"] {
            out.push(Bytes::from_static(line.as_bytes()));
        }
        let mut socket = Trickle {
            limit: 5,
            got: Vec::new(),
        };
        let mut mid_line_seen = false;
        while !out.is_empty() {
            let left = waiting(&out);
            assert_eq!(out.write_to(&mut socket).await.unwrap(), left.min(5));
            mid_line_seen |= out.mid_line();
        }
        assert_eq!(socket.got, b"[a] x: one\n[a] y: two\n[a] z: three\n");
        assert!(mid_line_seen, "5-byte writes stop inside lines");
        assert!(!out.mid_line(), "everything written ends at a line's end");
        assert_eq!(out.parts.capacity(), 0, "an idle connection keeps no list");
    }

    fn waiting(out: &Outgoing) -> usize {
        out.parts.iter().map(Bytes::len).sum()
    }

    #[tokio::test]
    async fn more_parts_than_one_writev_takes_go_out_in_several() {
        let mut out = Outgoing::default();
        for i in 0..(MAX_SLICES * 2 + 3) {
            out.push(Bytes::from(format!("line {i}\n")));
        }
        out.push(Bytes::new()); // nothing to write: not queued
        let mut socket = Trickle {
            limit: usize::MAX,
            got: Vec::new(),
        };
        let mut calls = 0;
        while !out.is_empty() {
            out.write_to(&mut socket).await.unwrap();
            calls += 1;
        }
        assert_eq!(calls, 3);
        let text = String::from_utf8(socket.got).unwrap();
        assert_eq!(text.lines().count(), MAX_SLICES * 2 + 3);
        assert!(text.ends_with("line 130\n"));
    }
}
