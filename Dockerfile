# magpie in one small image. Most people pull the published one (ghcr.io/<owner>/magpie, built
# for amd64 and arm64 by .github/workflows/release.yml); this file is how it is made, and how to
# build your own:
#
#   docker build -t magpie .                                        # 30-45 minutes the first time
#   docker run -p 8080:8080 -v "$PWD/data:/data" magpie            # serve /data
#   docker run -p 8080:8080 magpie demo                              # try it on a demo history
#
# A build stage compiles the release binary (DuckDB's bundled C++ included); the runtime is
# distroless's `cc` image: glibc, libgcc, libstdc++, CA certificates and time zones, no shell
# and no package manager (scripts/build-image.sh assembles the same layers from Debian's
# packages without a Docker engine and measures the image: see the README). The health check is
# `magpie health`, since there is no curl. .ci/run builds this same binary on every change.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p magpie \
    && cp target/release/magpie /usr/local/bin/magpie \
    && strip /usr/local/bin/magpie

# The data folder, made where there is a shell (the runtime has none).
FROM busybox:1.36 AS folders
RUN mkdir -p /empty/data

# What every variant of the image shares: the base, the data folder owned by uid 1000 (the
# user magpie runs as; compose files may run it as another), the settings and the health check.
FROM gcr.io/distroless/cc-debian12 AS runtime
COPY --from=folders --chown=1000:1000 /empty/data /data
USER 1000:1000
WORKDIR /data
ENV MAGPIE_DATA_DIR=/data \
    MAGPIE_SERVER__BIND=0.0.0.0 \
    MAGPIE_SERVER__PORT=8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/magpie", "health"]
# Docker's stop sends SIGTERM and waits 10 s: magpie stops the scheduler, finishes
# requests, checkpoints the warehouse and exits well within that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/magpie"]
CMD ["serve"]

# The release workflow's variant: binaries built natively for each architecture beforehand
# (image-bin/<amd64|arm64>/magpie), so the multi-arch image needs no compiler under emulation.
FROM runtime AS prebuilt
ARG TARGETARCH
COPY image-bin/${TARGETARCH}/magpie /usr/local/bin/magpie

# The default: the binary compiled above.
FROM runtime
COPY --from=build /usr/local/bin/magpie /usr/local/bin/magpie
