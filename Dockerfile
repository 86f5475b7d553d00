# syntax=docker/dockerfile:1

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin itaku \
    && cp target/release/itaku /usr/local/bin/itaku

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --create-home itaku
WORKDIR /app
COPY --from=builder /usr/local/bin/itaku /usr/local/bin/itaku
COPY workflows/ /app/workflows/
RUN mkdir -p /app/data && chown itaku:itaku /app/data
USER itaku
# The SQLite database and written mail live under /app/data by default.
VOLUME ["/app/data"]
ENV ITAKU_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["itaku", "healthcheck"]
ENTRYPOINT ["itaku"]
CMD ["serve"]
