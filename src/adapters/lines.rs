//! Line framing for the TCP adapter: tokio-util's `LinesCodec`, made forgiving.
//!
//! `LinesCodec` splits on `\n` (dropping a `\r` before it, so netcat on any platform works) and
//! enforces a maximum length without buffering past it. But it reports an over-long line or
//! invalid UTF-8 as an *error*, and a `FramedRead` stops at its first error: one bad line would
//! end the session. This wrapper turns both into ordinary items, so the adapter can answer with a
//! clear `! ` line and go on with the next line.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

/// One framed piece of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A complete line, without its line ending.
    Line(String),
    /// A line longer than the limit; its bytes were discarded up to the next newline.
    TooLong,
    /// A line that was not valid UTF-8; it was discarded.
    NotUtf8,
}

/// `LinesCodec` with bad lines as items instead of stream-ending errors.
#[derive(Debug)]
pub struct ChatLines {
    inner: LinesCodec,
}

impl ChatLines {
    /// Lines of at most `max_line_bytes` bytes (line ending excluded).
    pub fn new(max_line_bytes: usize) -> ChatLines {
        ChatLines {
            inner: LinesCodec::new_with_max_length(max_line_bytes),
        }
    }

    fn map(result: Result<Option<String>, LinesCodecError>) -> io::Result<Option<Input>> {
        match result {
            Ok(line) => Ok(line.map(Input::Line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Input::TooLong)),
            // The codec does no I/O of its own: its only `InvalidData` is a line that is not
            // UTF-8, which it has already consumed.
            Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(Input::NotUtf8))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for ChatLines {
    type Item = Input;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Input>> {
        Self::map(self.inner.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Input>> {
        Self::map(self.inner.decode_eof(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ChatLines, bytes: &[u8]) -> Vec<Input> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn both_line_endings() {
        let mut c = ChatLines::new(16);
        assert_eq!(
            decode_all(&mut c, b"a\nb\r\n"),
            vec![Input::Line("a".into()), Input::Line("b".into())]
        );
    }

    #[test]
    fn too_long_then_carries_on() {
        let mut c = ChatLines::new(4);
        let items = decode_all(&mut c, b"12345678\nok\n");
        assert_eq!(items, vec![Input::TooLong, Input::Line("ok".into())]);
    }

    #[test]
    fn too_long_across_reads_is_one_error() {
        let mut c = ChatLines::new(4);
        let mut buf = BytesMut::from(&b"123456"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Input::TooLong));
        buf.extend_from_slice(b"7890");
        assert_eq!(c.decode(&mut buf).unwrap(), None, "still discarding");
        buf.extend_from_slice(b"abc\nok\n");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Input::Line("ok".into())));
    }

    #[test]
    fn invalid_utf8_then_carries_on() {
        let mut c = ChatLines::new(16);
        let items = decode_all(&mut c, b"\xff\xfe\nfine\n");
        assert_eq!(items, vec![Input::NotUtf8, Input::Line("fine".into())]);
    }
}
