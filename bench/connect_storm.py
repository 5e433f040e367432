"""N certificate devices connect at once and auto-register; beside it, in the same run,
the same N TLS client-certificate connections to a plain mosquitto (no plugin, no
service). The ratio is what fleetgate adds.

    .venv/bin/python bench/connect_storm.py [--devices 2000] [--concurrency 200]

It starts its own `fleetgate up` (temporary home, free ports), trusts a fresh CA with
auto-registration through the REST API, connects the devices with a minimal MQTT 3.1.1
client (CONNECT/CONNACK only, so both runs pay the same client cost), and reads each
device's registration time (its managed object's ``creationTime``) back from the API.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from fleetgate.pki import Issued, generate_ca, issue_client_certificate

from embedded import free_port, percentile, running_stack


def connect_packet(client_id: str) -> bytes:
    ident = client_id.encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(ident).to_bytes(2, "big") + ident
    remaining = len(variable) + len(payload)
    encoded = bytearray()
    while True:
        byte, remaining = remaining % 128, remaining // 128
        encoded.append(byte | (0x80 if remaining else 0))
        if not remaining:
            break
    return b"\x10" + bytes(encoded) + variable + payload


async def connect(
    port: int, device: Issued, client_id: str, ca_file: Path, key_dir: Path
) -> tuple[float, float, asyncio.StreamWriter | None]:
    """(start, CONNACK time, writer kept open) — writer None when refused."""
    cert = key_dir / f"{client_id}.crt"
    key = key_dir / f"{client_id}.key"
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(cert, key)
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("localhost", port, ssl=context)
    writer.write(connect_packet(client_id))
    await writer.drain()
    connack = await reader.readexactly(4)
    done = time.monotonic()
    if connack[3] != 0:
        writer.close()
        return start, done, None
    return start, done, writer


async def storm(
    port: int, devices: list[tuple[str, Issued]], ca_file: Path, key_dir: Path, concurrency: int
) -> tuple[dict[str, tuple[float, float]], float, list[asyncio.StreamWriter]]:
    gate = asyncio.Semaphore(concurrency)
    writers: list[asyncio.StreamWriter] = []
    times: dict[str, tuple[float, float]] = {}

    async def one(client_id: str, device: Issued) -> None:
        async with gate:
            start, done, writer = await connect(port, device, client_id, ca_file, key_dir)
        if writer is None:
            raise SystemExit(f"{client_id} was refused")
        writers.append(writer)
        times[client_id] = (start, done)

    began = time.monotonic()
    await asyncio.gather(*(one(cid, dev) for cid, dev in devices))
    return times, time.monotonic() - began, writers


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


async def run_fleetgate(args: argparse.Namespace, root: Path, devices, ca: Issued) -> dict:
    key_dir = root / "keys"
    async with running_stack(root) as stack:
        admin = stack["admin"]
        auth = (f"{admin['tenant']}/{admin['username']}", admin["password"])
        async with httpx.AsyncClient(base_url=stack["api_url"], auth=auth, timeout=60) as api:
            added = await api.post(
                f"/tenant/tenants/{admin['tenant']}/trusted-certificates",
                json={
                    "name": "storm CA",
                    "certInPemFormat": ca.cert_pem().decode(),
                    "status": "ENABLED",
                    "autoRegistrationEnabled": True,
                },
            )
            added.raise_for_status()
            await asyncio.sleep(1.0)  # the CA reaches the broker within 1 s (issue 3)
            wall_start = time.time() - time.monotonic()  # monotonic → epoch offset
            times, elapsed, writers = await storm(
                int(stack["mqtt_cert_port"]),
                devices,
                Path(stack["ca_file"]),
                key_dir,
                args.concurrency,
            )
            # Wait until every device is registered, then read each registration time.
            registered: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while len(registered) < len(devices) and time.monotonic() < deadline:
                page = 1
                registered.clear()
                while True:
                    body = (
                        await api.get(
                            "/inventory/managedObjects",
                            params={
                                "fragmentType": "c8y_IsDevice",
                                "pageSize": 2000,
                                "currentPage": page,
                            },
                        )
                    ).json()
                    for mo in body["managedObjects"]:
                        created = datetime.fromisoformat(mo["creationTime"].replace("Z", "+00:00"))
                        registered[mo["name"]] = created.timestamp()
                    if len(body["managedObjects"]) < 2000:
                        break
                    page += 1
                if len(registered) < len(devices):
                    await asyncio.sleep(0.5)
            close_all(writers)
    latency = [
        registered[cid] - (wall_start + start)
        for cid, (start, _) in times.items()
        if cid in registered
    ]
    last = max(registered.values()) - (wall_start + min(s for s, _ in times.values()))
    return {
        "connect_s": elapsed,
        "registered": len(registered),
        "registrations_per_s": len(registered) / last if last > 0 else float("nan"),
        "p50": statistics.median(latency),
        "p99": percentile(latency, 99),
        "connack_p50": statistics.median(d - s for s, d in times.values()),
    }


async def run_plain(
    args: argparse.Namespace, root: Path, devices, ca_file: Path, ca: Issued
) -> dict:
    """The same connections to a plain mosquitto TLS listener: no plugin, no service."""
    from fleetgate.pki import ensure_dev_pki

    pki = ensure_dev_pki(root / "certs")
    port = free_port()
    conf = root / "plain.conf"
    (root / "plain-ca.crt").write_bytes(ca.cert_pem())
    (root / "plain-ca.crt").chmod(0o644)
    conf.write_text(
        f"per_listener_settings false\nallow_anonymous false\n"
        f"listener {port} 127.0.0.1\ncafile {root / 'plain-ca.crt'}\n"
        f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\nuse_identity_as_username true\n"
        "max_connections -1\n"
    )
    conf.chmod(0o644)
    broker = subprocess.Popen(  # noqa: ASYNC220 — the baseline broker, polled below
        ["mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        times, elapsed, writers = await storm(
            port, devices, pki.ca_file, root / "keys", args.concurrency
        )
        close_all(writers)
        latency = [d - s for s, d in times.values()]
        return {
            "connect_s": elapsed,
            "connections_per_s": len(devices) / elapsed,
            "p50": statistics.median(latency),
            "p99": percentile(latency, 99),
        }
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=int, default=200, help="connections in flight at once"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetgate-storm-"))
    root.chmod(0o755)
    (root / "keys").mkdir()
    ca = generate_ca("storm devices CA")
    devices = []
    for i in range(args.devices):
        client_id = f"storm-{i:05d}"
        device = issue_client_certificate(ca, client_id)
        device.write(root / "keys" / f"{client_id}.crt", root / "keys" / f"{client_id}.key")
        devices.append((client_id, device))
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.devices + 1024)), hard)
    )

    fleet = await run_fleetgate(args, root, devices, ca)
    plain = await run_plain(args, root, devices, root / "certs" / "ca.crt", ca)
    print(f"devices: {args.devices}, concurrency: {args.concurrency}")
    print(
        f"fleetgate: {fleet['registered']} registered, {fleet['registrations_per_s']:.0f} "
        f"registrations/s; connect→registered p50 {fleet['p50'] * 1000:.0f} ms, "
        f"p99 {fleet['p99'] * 1000:.0f} ms; all CONNACKs in {fleet['connect_s']:.2f} s "
        f"(CONNACK p50 {fleet['connack_p50'] * 1000:.1f} ms)"
    )
    print(
        f"plain mosquitto: {plain['connections_per_s']:.0f} connections/s; CONNACK p50 "
        f"{plain['p50'] * 1000:.1f} ms, p99 {plain['p99'] * 1000:.1f} ms; all in "
        f"{plain['connect_s']:.2f} s"
    )
    print(
        f"ratio (fleetgate time to all registered / plain time to all connected): "
        f"{(args.devices / fleet['registrations_per_s']) / plain['connect_s']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
