# syntax=docker/dockerfile:1
# The suite's images: one build of the workspace, one small runtime image per service.
#
#   docker build --target intake        -t registry.example.org/zvv/intake:0.1.0 .
#   docker build --target signalling    -t registry.example.org/zvv/signalling:0.1.0 .
#   docker build --target reintegration -t registry.example.org/zvv/reintegration:0.1.0 .
#   docker build --target notifications -t registry.example.org/zvv/notifications:0.1.0 .
#   docker build --target cli           -t registry.example.org/zvv/cli:0.1.0 .   (zvv audit verify)
#
# Runtime images: distroless (glibc, CA certificates, no shell, no package manager), numeric
# non-root user 65532, nothing written outside mounted volumes (read-only root filesystem),
# configured only by environment variables (deploy/README.md).

# Base images by tag; pin them by digest (image@sha256:...) in the release build.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# the four service binaries, with the versions in Cargo.lock; the caches keep the registry and
# the target folder between builds (the binaries are copied out of the cached target folder)
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p zvv-intake -p zvv-signalling -p zvv-reintegration -p zvv-notifications \
    && mkdir -p /out \
    && cp target/release/zvv-intake target/release/zvv-signalling \
          target/release/zvv-reintegration target/release/zvv-notifications /out/

# the zvv command, only for the cli target
FROM builder AS cli-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p zvv \
    && cp target/release/zvv /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
WORKDIR /

FROM runtime AS intake
COPY --from=builder --chown=0:0 --chmod=0555 /out/zvv-intake /usr/local/bin/zvv-intake
ENV ZVV_INTAKE_LISTEN=0.0.0.0:50051
EXPOSE 50051
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zvv-intake"]

FROM runtime AS signalling
COPY --from=builder --chown=0:0 --chmod=0555 /out/zvv-signalling /usr/local/bin/zvv-signalling
ENV ZVV_SIGNALLING_LISTEN=0.0.0.0:50052
EXPOSE 50052
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zvv-signalling"]

FROM runtime AS reintegration
COPY --from=builder --chown=0:0 --chmod=0555 /out/zvv-reintegration /usr/local/bin/zvv-reintegration
ENV ZVV_REINTEGRATION_LISTEN=0.0.0.0:50053
EXPOSE 50053
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zvv-reintegration"]

FROM runtime AS cli
COPY --from=cli-builder --chown=0:0 --chmod=0555 /out/zvv /usr/local/bin/zvv
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zvv"]

# last, so that a build without --target gives a service image too
FROM runtime AS notifications
COPY --from=builder --chown=0:0 --chmod=0555 /out/zvv-notifications /usr/local/bin/zvv-notifications
ENV ZVV_NOTIFICATIONS_LISTEN=0.0.0.0:50054
EXPOSE 50054
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zvv-notifications"]
