//! A tiny terminal client for chatd's line protocol: what `nc localhost 9001` does, in 40 lines
//! of tokio, to show how little a client needs.
//!
//! Run: `cargo run --example chat_client -- 127.0.0.1:9001`
//! Type lines; they go to the server. Lines from the server are printed as they arrive.

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let stream = TcpStream::connect(&addr).await?;
    let (read, mut write) = stream.into_split();
    let mut from_server = FramedRead::new(read, LinesCodec::new());
    let mut from_user = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = from_server.next() => match line {
                Some(line) => println!("{}", line?),
                None => break, // the server closed the connection (after /quit, say)
            },
            line = from_user.next_line() => match line? {
                Some(line) => write.write_all(format!("{line}\n").as_bytes()).await?,
                None => break, // end of input
            },
        }
    }
    Ok(())
}
