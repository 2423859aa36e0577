# One image for every service; the container's command picks the service.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs libs
COPY services services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# gnupg: OpenPGP decryption of partners' files and encryption of exports (python-gnupg
# drives the gpg binary).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 courier
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER courier
ENV COURIER_HEALTH_HOST=0.0.0.0 COURIER_HEALTH_PORT=9100
EXPOSE 2222 8080 9100
ENTRYPOINT ["courier"]
CMD ["service", "importer"]
