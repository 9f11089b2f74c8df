//! The SSE client: joins one room over chatd's HTTP API (`POST /connect`, then
//! `GET /messages/ROOM?session=TOKEN`) and only reads, timing every message it receives.
//!
//! The stream is parsed by hand, line by line: only `event: message` blocks are read, and of
//! their `data:` only the `text` field matters (`wire::sse_message_text`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures_util::StreamExt;

use crate::clients::{CONNECT_TIMEOUT, Client, Shared};
use crate::stats::Batch;
use crate::wire;

/// An SSE client: `POST /connect`, then `GET /messages/ROOM?session=TOKEN`, read until `stop`.
pub async fn sse_client(client: Client, http: reqwest::Client, shared: Arc<Shared>) {
    let base = format!("http://{}", client.addr);
    let session = match tokio::time::timeout(CONNECT_TIMEOUT, connect(&http, &base)).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => return shared.connect_failed(&format!("POST {base}/connect: {e}")),
        Err(_) => return shared.connect_failed(&format!("POST {base}/connect: timed out")),
    };
    let url = format!("{base}/messages/lg{}?session={session}", client.room);
    let response = match tokio::time::timeout(CONNECT_TIMEOUT, http.get(&url).send()).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        Ok(Ok(r)) => return shared.connect_failed(&format!("GET {url}: {}", r.status())),
        Ok(Err(e)) => return shared.connect_failed(&format!("GET {url}: {e}")),
        Err(_) => return shared.connect_failed(&format!("GET {url}: timed out")),
    };
    // The server joins the room when it opens the stream: we are a member now.
    shared.joined(client.room);
    let stats = &shared.stats;
    let mut batch = Batch::new(client.index);
    let mut body = response.bytes_stream();
    let mut input: Vec<u8> = Vec::new();
    let mut event_is_message = false;
    loop {
        let chunk = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            chunk = body.next() => chunk,
        };
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
            Some(Err(_)) | None => {
                stats.disconnects.fetch_add(1, Relaxed);
                stats.sample(&format!("SSE stream of client {} ended", client.index));
                break;
            }
        };
        let now = stats.now_micros();
        input.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(end) = input[consumed..].iter().position(|&b| b == b'\n') {
            let raw = &input[consumed..consumed + end];
            consumed += end + 1;
            let line = std::str::from_utf8(raw).unwrap_or("");
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(name) = line.strip_prefix("event:") {
                event_is_message = name.trim() == "message";
            } else if let Some(data) = line.strip_prefix("data:") {
                if event_is_message {
                    let text = wire::sse_message_text(data.trim_start());
                    if let Some(stamp) = text.and_then(|t| wire::decode_payload(&t, stats.run)) {
                        batch.record(stats, now.saturating_sub(stamp.micros));
                    }
                }
            } else if line.is_empty() {
                event_is_message = false;
            }
        }
        input.drain(..consumed);
    }
    batch.flush(stats);
}

/// `POST /connect` with an empty body; the session token.
async fn connect(http: &reqwest::Client, base: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Connected {
        session: String,
    }
    let response = http
        .post(format!("{base}/connect"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(response.status().to_string());
    }
    let connected: Connected = response.json().await.map_err(|e| e.to_string())?;
    Ok(connected.session)
}
