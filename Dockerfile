# magpie in one small image: a build stage compiles the release binary (DuckDB's bundled C++
# included: 30-45 minutes on two cores the first time), the runtime stage is Debian slim with
# the binary, CA certificates and curl for the health check, running as a non-root user.
#
#   docker build -t magpie .
#   docker run -p 8080:8080 -v "$PWD/data:/data" magpie            # serve /data
#   docker run -p 8080:8080 magpie demo                              # try it on a demo history
#
# .ci/run builds this same binary (`cargo build --release --locked -p magpie`) on every change.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p magpie \
    && cp target/release/magpie /usr/local/bin/magpie \
    && strip /usr/local/bin/magpie

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --home-dir /data --no-create-home magpie \
    && mkdir -p /data && chown magpie:magpie /data
COPY --from=build /usr/local/bin/magpie /usr/local/bin/magpie
USER magpie
WORKDIR /data
ENV MAGPIE_DATA_DIR=/data \
    MAGPIE_SERVER__BIND=0.0.0.0 \
    MAGPIE_SERVER__PORT=8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# Docker's stop sends SIGTERM and waits 10 s: magpie stops the scheduler, finishes
# requests, checkpoints the warehouse and exits well within that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["magpie"]
CMD ["serve"]
