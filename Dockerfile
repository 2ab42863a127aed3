# syntax=docker/dockerfile:1
#
# reconciler serve as a container (docs/deploy.md): Exotel's Connect applet (Dynamic URL)
# and Passthru applet answered from the manifests mounted at /config/manifests.
#
#    docker build -t exotel-reconciler .
#    docker run --rm -p 8080:8080 -v "$PWD/manifests:/config/manifests:ro" exotel-reconciler
#
# The dependencies are the ones the tests ran with: requirements.lock, hash-checked and
# wheels only, then the reconciler itself without dependencies and without build isolation
# (the build backend comes from the lock too), exactly as the GitHub workflows install it.

# The Python the workflows test with (actions/setup-python, "3.11"). Pin a digest here
# (python:3.11-slim-trixie@sha256:...) once your registry has mirrored it.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/reconciler
COPY requirements.lock ./
RUN /opt/reconciler/bin/python -m pip install --no-cache-dir --require-hashes \
        --only-binary :all: --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
# pip check: the lock covers every dependency the package declares, at a version it accepts.
RUN /opt/reconciler/bin/python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/reconciler/bin/python -m pip check \
    && /opt/reconciler/bin/python -m compileall -q /opt/reconciler/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="exotel-reconciler" \
      org.opencontainers.image.description="reconciler serve: Exotel's Connect and Passthru webhooks from GitOps manifests" \
      org.opencontainers.image.licenses="MIT"
# A fixed numeric UID, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid reconciler --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin reconciler
COPY --from=build /opt/reconciler /opt/reconciler
# Bytecode was compiled in the build stage: nothing is written at run time, so the root
# filesystem can be mounted read-only.
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /config
USER 10001:10001
EXPOSE 8080
# /healthz: 200 while routes are served (even a stale last good state), 503 before any
# load. Python is in the image already; curl is not needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["reconciler"]
CMD ["serve", "/config/manifests", "--host", "0.0.0.0", "--port", "8080"]
