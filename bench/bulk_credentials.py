"""Import a CSV of N devices through the bulk credentials service; beside it, in the same
run, a plain ``COPY`` of the same rows into a scratch table, and the same N password
hashes alone (the cost the import cannot avoid).

    .venv/bin/python bench/bulk_credentials.py [--rows 10000] [--database-url URL] [--cheap-hash]

Without ``--database-url`` it starts a private PostgreSQL on a free port (as the tests
do) and removes it afterwards. Every row has TYPE, NAME, ICCID, a two-level PATH (100
groups) and SHELL, so each row exercises the whole transaction. Memory is the Python
heap's peak during the import (tracemalloc) and the growth of the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import shutil
import socket
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.db.migrations import migrate
from fleetgate.db.pool import create_pool, ensure_database
from fleetgate.db.users import PgUsers
from fleetgate.domain.bulk import DeviceRow
from fleetgate.domain.bulk_file import BulkFile
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Tenant
from fleetgate.services.bulk import BulkCredentials, BulkLimits


class CountingBroker:
    def __init__(self) -> None:
        self.pushes = 0
        self.lines = 0

    async def push(self, lines: list[str]) -> None:
        self.pushes += 1
        self.lines += len(lines)

    async def resync(self) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("ID;CREDENTIALS;TYPE;NAME;ICCID;PATH;SHELL\r\n")
        for i in range(rows):
            out.write(
                f"bench-{i:06d};pw-{secrets.token_hex(6)};bench_type;Bench {i};"
                f"89{i:017d};bench site {i % 10}/line {i % 100};{i % 2}\r\n"
            )


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cheap_hash(password: str) -> str:
    """For ``--cheap-hash`` only: shows the import's own cost and memory at scale."""
    return hash_password(password, log2_n=4, r=1)


async def run(url: str, rows: int, workdir: Path, *, cheap: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url, min_size=2, max_size=10)
    try:
        await PgUsers(pool).ensure_tenant(Tenant("t1", is_management=False))
        csv_path = workdir / "devices.csv"
        write_csv(csv_path, rows)
        size_mib = csv_path.stat().st_size / 2**20

        # Baseline 1: COPY the same rows, as parsed, into a scratch table.
        with csv_path.open("rb") as stream:
            parsed = [r for r in BulkFile(stream, management=False) if isinstance(r, DeviceRow)]
        records = [
            (r.device_id, r.password, r.type, r.name, r.iccid, "/".join(r.path)) for r in parsed
        ]
        del parsed
        async with pool.acquire() as c:
            await c.execute(
                "CREATE TABLE bench_copy (id text, credentials text, type text, name text,"
                " iccid text, path text)"
            )
            started = time.perf_counter()
            await c.copy_records_to_table("bench_copy", records=records)
            copy_s = time.perf_counter() - started
            await c.execute("DROP TABLE bench_copy")

        # Baseline 2: the N memory-hard hashes alone, on every core.
        threads = BulkLimits().hash_threads
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as executor:
            list(executor.map(cheap_hash if cheap else hash_password, (r[1] for r in records)))
        hash_s = time.perf_counter() - started
        del records

        broker = CountingBroker()
        hasher = cheap_hash if cheap else hash_password
        service = BulkCredentials(PgBulkCredentials(pool), broker, hasher=hasher)
        rss_before = rss_mib()
        tracemalloc.start()
        started = time.perf_counter()
        with csv_path.open("rb") as stream:
            result = await service.import_csv(Tenant("t1", is_management=False), "admin", stream)
        import_s = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_growth = rss_mib() - rss_before
        assert result.created == rows, result.failures[:3]
        devices = await pool.fetchval(
            "SELECT count(*) FROM app_user WHERE username LIKE 'device_%'"
        )
        assert devices == rows
    finally:
        await pool.close()

    kind = "cheap scrypt N=2^4 (memory check only)" if cheap else "default scrypt N=2^14"
    print(f"rows: {rows:,} ({size_mib:.1f} MiB CSV), {threads} hash threads, {kind}")
    print(f"bulk import      {import_s:8.2f} s  {rows / import_s:10,.0f} rows/s")
    print(f"  python heap peak {peak / 2**20:.1f} MiB, peak RSS growth {rss_growth:.1f} MiB")
    print(f"  broker pushes {broker.pushes} ({broker.lines:,} lines)")
    print(f"baseline: COPY   {copy_s:8.2f} s  {rows / copy_s:10,.0f} rows/s")
    print(f"baseline: hashes {hash_s:8.2f} s  {rows / hash_s:10,.0f} rows/s")
    print(f"import / hashes alone: {import_s / hash_s:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--database-url", help="an existing server database to create a scratch DB in"
    )
    parser.add_argument(
        "--cheap-hash",
        action="store_true",
        help="hash with N=2^4 instead of the default, to measure the rest at 100,000 rows",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fleetgate-bench-"))
    workdir.chmod(0o755)
    try:
        if args.database_url:
            name = f"fleetgate_bench_{secrets.token_hex(4)}"
            await ensure_database(args.database_url, name)
            await run(
                args.database_url.rpartition("/")[0] + "/" + name,
                args.rows,
                workdir,
                cheap=args.cheap_hash,
            )
            return
        from fleetgate.stack.postgres import ClusterLocation, PostgresCluster

        cluster = PostgresCluster(
            ClusterLocation(workdir / "pg", free_port(), secrets.token_urlsafe(16))
        )
        await cluster.start()
        try:
            await run(cluster.location.url("postgres"), args.rows, workdir, cheap=args.cheap_hash)
        finally:
            await cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
