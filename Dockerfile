# Two stages: build the release binary, then run it on a slim Debian with only what it needs.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev cmake \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked

FROM debian:bookworm-slim
# bubblewrap is the sandbox package managers run in (python3 runs its network forwarder);
# npm, pnpm and yarn 1 update JavaScript lock files; uv, Poetry and pip-tools (in /opt/tools)
# Python ones (prlimit comes with util-linux).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
        bubblewrap python3-minimal python3-venv nodejs npm util-linux \
    && rm -rf /var/lib/apt/lists/* \
    && npm install --global --no-audit --no-fund pnpm@10 yarn@1 \
    && python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install --no-cache-dir uv poetry pip-tools \
    && useradd --system --uid 10001 --home /var/lib/remediator remediator \
    && mkdir -p /var/lib/remediator/scratch && chown remediator /var/lib/remediator/scratch
COPY --from=build /src/target/release/remediator /usr/local/bin/remediator
# A current Go for go.mod/go.sum updates (Debian's is too old); lockfiles.go points at it.
COPY --from=golang:1.23-bookworm /usr/local/go /usr/local/go
# The toolchain's cargo itself (not rustup's proxy) for Cargo.lock updates.
COPY --from=build /usr/local/rustup/toolchains/*/bin/cargo /usr/local/bin/cargo
USER remediator
ENV REMEDIATOR__WORKER__SCRATCH_DIR=/var/lib/remediator/scratch \
    REMEDIATOR__LOCKFILES__GO=/usr/local/go/bin/go \
    REMEDIATOR__LOCKFILES__CARGO=/usr/local/bin/cargo \
    REMEDIATOR__LOCKFILES__UV=/opt/tools/bin/uv \
    REMEDIATOR__LOCKFILES__POETRY=/opt/tools/bin/poetry \
    REMEDIATOR__LOCKFILES__PIP_COMPILE=/opt/tools/bin/pip-compile \
    REMEDIATOR__INTAKE__LISTEN=0.0.0.0:8080 \
    REMEDIATOR__WORKER__METRICS_LISTEN=0.0.0.0:9464
EXPOSE 8080 9464
ENTRYPOINT ["remediator"]
CMD ["intake"]
