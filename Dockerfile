# Gateway image. The builder turns the package and every dependency into wheels and installs them
# into /opt/venv; the runtime stage copies only that venv onto python:3.11-slim and runs as uid 10001.
#
#   docker build -t gateway:local .
#   docker run --rm -p 127.0.0.1:8080:8080 -e GATEWAY_ALLOW_UNAUTHENTICATED=true gateway:local
#
# Both stages use the same base image so the venv's interpreter path (/usr/local/bin/python) matches.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers for any dependency that has no wheel for the target platform. They stay in this stage;
# unpinned on purpose: the builder's toolchain does not reach the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, at the versions locked in requirements.lock (.ci/lock-dependencies.sh makes it
# from pyproject.toml), so every build installs what CI tested and editing the code does not rebuild this layer.
COPY pyproject.toml requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels -r requirements.lock

COPY README.md ./
COPY gateway ./gateway
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-index --find-links /wheels -r requirements.lock \
    && /opt/venv/bin/pip install --no-index --no-deps --find-links /wheels gateway \
    && /opt/venv/bin/gateway --help > /dev/null


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="gateway" \
      org.opencontainers.image.description="OpenAI-compatible model-routing gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin gateway

COPY --from=builder /opt/venv /opt/venv
# The default policy resolves as policies/default.yaml relative to the working directory.
COPY policies /app/policies

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in Kubernetes; the venv is compiled at install.
# LITELLM_LOCAL_MODEL_COST_MAP: use the price map bundled with litellm instead of fetching it at import.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    GATEWAY_PORT=8080

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# slim has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0"]
