//! Labeled responses and batches: how the lines answering one command reach the client.
//!
//! A client with `labeled-response` may tag a command `@label=xyz`; everything the server sends
//! in answer must then carry that label, so the client can match answers to questions. One line
//! gets the tag itself; several are wrapped in a `labeled-response` batch whose start carries it;
//! none at all is answered with a labeled `ACK`. Lines pushed by other people meanwhile (a room
//! message) are not part of the answer and go out unlabeled: they are written separately, never
//! inside the batch. The echo of a labeled `PRIVMSG` is the exception the connection handles: it
//! arrives from the room later, and gets the label then.

use bytes::{Bytes, BytesMut};

use super::caps::{Cap, Caps};
use super::message::{Line, tag_pair, with_tags};

/// Hands out batch ids, unique within a connection.
#[derive(Debug, Default)]
pub struct Batches {
    next: u64,
}

impl Batches {
    /// A fresh batch id (letters and digits only, as the specification asks).
    pub fn id(&mut self) -> String {
        self.next += 1;
        format!("b{}", self.next)
    }
}

/// Wraps `lines` in a batch of `kind` (with its parameters): a `BATCH +id` start, each line
/// tagged `batch=id`, a `BATCH -id` end.
pub fn batch(server: &str, batches: &mut Batches, kind: &[&str], lines: &[Bytes]) -> Vec<Bytes> {
    let id = batches.id();
    let mut start = Line::new(server, "BATCH").param(&format!("+{id}"));
    for param in kind {
        start = start.param(param);
    }
    let tag = tag_pair("batch", &id);
    let mut out = Vec::with_capacity(lines.len() + 2);
    out.push(start.bytes());
    out.extend(lines.iter().map(|line| with_tags(line, &tag)));
    out.push(Line::new(server, "BATCH").param(&format!("-{id}")).bytes());
    out
}

/// The bytes answering one command: `lines` as they are, or labeled when the client sent a
/// `label` and has `labeled-response` (see the module docs).
pub fn finish(
    server: &str,
    caps: Caps,
    batches: &mut Batches,
    label: Option<&str>,
    lines: Vec<Bytes>,
) -> Bytes {
    let label = match label {
        Some(label) if caps.has(Cap::LABELED) => tag_pair("label", label),
        _ => return concat(&lines),
    };
    match lines.as_slice() {
        [] => with_tags(&Line::new(server, "ACK").bytes(), &label),
        [one] => with_tags(one, &label),
        many if caps.has(Cap::BATCH) => {
            let mut wrapped = batch(server, batches, &["labeled-response"], many);
            wrapped[0] = with_tags(&wrapped[0], &label);
            concat(&wrapped)
        }
        // Without batches there is no way to group them: the first line carries the label.
        [first, rest @ ..] => {
            let mut all = vec![with_tags(first, &label)];
            all.extend(rest.iter().cloned());
            concat(&all)
        }
    }
}

/// The lines one after the other, in one buffer (one write).
pub fn concat(lines: &[Bytes]) -> Bytes {
    match lines {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut buf = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for line in many {
                buf.extend_from_slice(line);
            }
            buf.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labeled() -> Caps {
        let mut caps = Caps::default();
        super::super::caps::cap("s", "*", &["REQ", "labeled-response batch"], &mut caps);
        caps
    }

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn no_label_no_change() {
        let lines = vec![Bytes::from_static(b":s PONG s :x\r\n")];
        let out = finish("s", labeled(), &mut Batches::default(), None, lines);
        assert_eq!(text(out), ":s PONG s :x\r\n");
    }

    #[test]
    fn one_line_is_labeled_none_is_acked_several_are_batched() {
        let mut batches = Batches::default();
        let one = vec![Bytes::from_static(b":s PONG s :x\r\n")];
        let out = finish("s", labeled(), &mut batches, Some("a1"), one);
        assert_eq!(text(out), "@label=a1 :s PONG s :x\r\n");
        let out = finish("s", labeled(), &mut batches, Some("a2"), Vec::new());
        assert_eq!(text(out), "@label=a2 :s ACK\r\n");
        let two = vec![
            Bytes::from_static(b":me JOIN #x\r\n"),
            Bytes::from_static(b":s 366 me #x :End\r\n"),
        ];
        let out = finish("s", labeled(), &mut batches, Some("a3"), two);
        assert_eq!(
            text(out),
            "@label=a3 :s BATCH +b1 labeled-response\r\n@batch=b1 :me JOIN #x\r\n\
             @batch=b1 :s 366 me #x :End\r\n:s BATCH -b1\r\n"
        );
    }

    #[test]
    fn a_label_without_the_capability_is_ignored() {
        let lines = vec![Bytes::from_static(b":s PONG s :x\r\n")];
        let out = finish(
            "s",
            Caps::default(),
            &mut Batches::default(),
            Some("a"),
            lines,
        );
        assert_eq!(text(out), ":s PONG s :x\r\n");
    }
}
