# The fleetgate service image: `fleetgate serve`, and `fleetgate hash-password` for the
# broker-init step of docker-compose.yml. Build context: the repository root.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# openssl: fleetgate.pki.capath hashes CA subjects with the same OpenSSL as the broker.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
# setup.py ships broker/ (the plugin's sources and config template) in the package, as
# fleetgate/_broker; `serve` does not need them, but the wheel is the same everywhere.
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY src/ ./src/
COPY broker/ ./broker/
RUN pip install --no-cache-dir . && rm -rf /build

# A fixed uid/gid: the broker image adds its mosquitto user to group 10001 so that it can
# read the service password hash that broker-init writes (mode 0640) into /run/fleetgate.
# /run/fleetgate exists here, owned by this user, so that a new named volume mounted on
# it starts out writable by it.
RUN groupadd --system --gid 10001 fleetgate \
    && useradd --system --uid 10001 --gid fleetgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin fleetgate \
    && install -d -o fleetgate -g fleetgate -m 0750 /run/fleetgate \
    && install -d -o fleetgate -g fleetgate -m 0755 /mosquitto/trusted

USER fleetgate:fleetgate
WORKDIR /home/fleetgate

EXPOSE 8080
ENTRYPOINT ["fleetgate"]
CMD ["serve"]
