# syntax=docker/dockerfile:1
# One image per DSPEx process, all built from one stage that installs the hash-locked
# dependencies and the workspace packages: `docker build --target registry .` (or kernel,
# evaluator, optimizer, simlm). docker-compose.yml builds every target.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: a source change does not reinstall them.
COPY requirements/main.txt requirements/main.txt
RUN pip install --require-hashes --no-deps -r requirements/main.txt
# The workspace packages, built with the pinned hatchling installed above (no network).
COPY contracts contracts
COPY libs/dspex_kernel libs/dspex_kernel
COPY libs/dspex_runtime libs/dspex_runtime
COPY libs/dspex_simlm libs/dspex_simlm
COPY services services
RUN pip install --no-deps --no-build-isolation \
        ./contracts ./libs/dspex_kernel ./libs/dspex_runtime ./libs/dspex_simlm \
        ./services/kernel ./services/evaluator ./services/optimizer ./services/registry \
    && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    DSPEX_HTTP_HOST=0.0.0.0 \
    DSPEX_HTTP_PORT=8080
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 dspex \
    && useradd --system --uid 10001 --gid dspex --home-dir /home/dspex --create-home dspex
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/dspex
EXPOSE 8080
# /healthz on DSPEX_HTTP_PORT; slim has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DSPEX_HTTP_PORT', '8080'), timeout=4)"]

FROM runtime AS registry
# `python -m dspex_registry migrate` (same image) upgrades PostgreSQL before it starts.
CMD ["python", "-m", "dspex_registry"]

FROM runtime AS kernel
CMD ["python", "-m", "dspex_kernel_service"]

FROM runtime AS evaluator
CMD ["python", "-m", "dspex_evaluator"]

FROM runtime AS optimizer
CMD ["python", "-m", "dspex_optimizer"]

FROM runtime AS simlm
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "dspex_simlm", "--host", "0.0.0.0", "--port", "8000"]
