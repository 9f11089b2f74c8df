# chatd in a container, for compose.yaml. Build: docker build -t chatd .
#
# Two stages: a Rust toolchain compiles the release binary; a slim Debian runs it with the browser
# client (static/) and the pipeline files next to it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin chatd

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/chatd --create-home chatd
WORKDIR /opt/chatd
COPY --from=build /src/target/release/chatd /usr/local/bin/chatd
COPY static ./static
COPY pipelines ./pipelines
USER chatd
ENV CHATD_DATA_DIR=/var/lib/chatd
EXPOSE 9001 3001 6667
ENTRYPOINT ["chatd"]
CMD ["--tcp", "0.0.0.0:9001", "--http", "0.0.0.0:3001", "--irc", "0.0.0.0:6667"]
