# syntax=docker/dockerfile:1
# The m2m-auth server image: `docker build -t m2m-auth .` (docs/kubernetes.md).
#
# Two stages. The builder makes a wheel of this checkout and installs it with the server and postgres extras
# into a virtual environment at /opt/m2m-auth; every dependency has a binary wheel for this Python, so no
# compiler is needed even there. The final stage copies only that environment onto a clean slim Python: no
# pip cache, no source tree, no build tools, no secret (settings come from M2M_AUTH_* at run time).
# tests/deploy/test_image_recipe.py runs the builder's RUN lines on the host to prove the recipe installs.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src
RUN python -m venv /opt/m2m-auth \
 && wheel="$(find /wheels -name 'm2m_auth-*.whl')" \
 && /opt/m2m-auth/bin/pip install --no-cache-dir --compile "${wheel}[server,postgres]" \
 && /opt/m2m-auth/bin/m2m-auth --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="m2m-auth" \
      org.opencontainers.image.description="OAuth 2 client-credentials server for service-to-service authentication" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric UID/GID, so Kubernetes can check runAsNonRoot without a passwd lookup. The working folder is
# the only writable one, for the embedded SQLite default of a plain `docker run`; Kubernetes uses PostgreSQL.
RUN groupadd --system --gid 10001 m2m \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/m2m-auth --create-home --shell /usr/sbin/nologin m2m
COPY --from=builder /opt/m2m-auth /opt/m2m-auth
ENV PATH=/opt/m2m-auth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
WORKDIR /var/lib/m2m-auth
USER 10001:10001
EXPOSE 8000
# No curl in the image: the check is the image's own Python.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
ENTRYPOINT ["m2m-auth"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
