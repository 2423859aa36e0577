# One image for every service: its entrypoint is `courier service`, the argument names the
# service (`docker run IMAGE gateway`); other commands: `docker run --entrypoint courier IMAGE
# db upgrade`. Runs as a non-root user on a read-only root filesystem: everything written at
# run time goes to /tmp (an emptyDir or tmpfs) or to the gateway's host key directory.
#
# The base is pinned to an exact Python and Debian release; bump it deliberately.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs libs
COPY services services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# gnupg: OpenPGP decryption of partners' files and encryption of exports (python-gnupg
# drives the gpg binary). Not version-pinned: the pinned Debian release's security
# updates are wanted, and a pinned version vanishes from the archive when one lands.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
# The host key directory is the one place outside /tmp it may write (a volume in compose).
RUN groupadd --system --gid 10001 courier \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin courier \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/courier/hostkeys
COPY --from=build /wheels /wheels
# Bytecode is compiled here, at install time, so nothing is written beside the code later.
RUN pip install --no-cache-dir --compile /wheels/*.whl && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    PIP_NO_CACHE_DIR=1 \
    COURIER_HEALTH_HOST=0.0.0.0 \
    COURIER_HEALTH_PORT=9100 \
    COURIER_GATEWAY_HOST=0.0.0.0 \
    COURIER_CONSOLE_HOST=0.0.0.0 \
    COURIER_GATEWAY_HOST_KEY_DIR=/var/lib/courier/hostkeys
USER 10001:10001
EXPOSE 2222 8080 9100
# /healthz on the health port; the image has Python, not curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('COURIER_HEALTH_PORT', '9100'), timeout=3)"]
ENTRYPOINT ["courier", "service"]
CMD ["importer"]
