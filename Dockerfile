# chatd in a container, for compose.yaml. Build: docker build -t chatd .
#
# Three stages:
# * deps compiles the dependencies alone, from Cargo.toml and Cargo.lock and empty sources. That
#   layer is cached until the manifests change, so a change to chatd's code rebuilds chatd only
#   (a minute or two), not all ~300 crates (the ~10 minutes of a first build on 2 cores).
# * build compiles chatd itself on top of it.
# * the runtime is a slim Debian with the binary, the browser client (static/), the pipeline
#   files, and curl for the health check (GET /readyz, see compose.yaml).
FROM rust:1.95-bookworm AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Empty stand-ins for every target the manifest names, so that cargo accepts it.
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for bench in stack ring history persist cluster cluster_poll; do \
      echo 'fn main() {}' > "benches/$bench.rs"; \
    done \
 && cargo build --release --locked --bin chatd \
 && rm -rf src benches

FROM deps AS build
COPY . .
# Newer than the stand-ins' build, whatever times COPY gave them: cargo rebuilds chatd.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin chatd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/chatd --create-home chatd
WORKDIR /opt/chatd
COPY --from=build /src/target/release/chatd /usr/local/bin/chatd
COPY static ./static
COPY pipelines ./pipelines
USER chatd
ENV CHATD_DATA_DIR=/var/lib/chatd
EXPOSE 9001 3001 6667
ENTRYPOINT ["chatd"]
CMD ["--tcp", "0.0.0.0:9001", "--http", "0.0.0.0:3001", "--irc", "0.0.0.0:6667"]
