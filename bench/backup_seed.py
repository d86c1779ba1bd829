"""A shop's worth of data for the backup benchmark and the backup fault tests: tables with indexes, and files.

Database: three tables next to the portal's own (which backup_run needs in the
same database), filled by `INSERT ... SELECT generate_series` in PostgreSQL, so
500 MB take about a minute instead of an hour of client round trips. Their
content compresses as real data does, neither like zeros nor like noise: words
from a vocabulary, e-mail addresses, amounts, timestamps spread over two years,
JSON documents with a few keys, and one md5 (incompressible) column per table.
A marker table records the size seeded, so a kept database is not seeded twice.

Files: a tree of JSON-lines logs and CSV exports (compressible) and of random
blobs (incompressible, like photos or already-compressed uploads), a third random.

    .venv/bin/python -m bench.backup_seed --size-mb 500 --files-mb 200 --files DIR
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/backup_seed.py`

import psycopg

from bench.common import named_postgres, progress

# Rows per MB of shop tables with their indexes, measured on PostgreSQL 15 (customers ~350 B a row, orders
# ~350 B, events ~280 B, indexes included).
CUSTOMERS_PER_MB = 320
ORDERS_PER_MB = 1_120
EVENTS_PER_MB = 1_930

SCHEMA = """
DROP TABLE IF EXISTS shop_events, shop_orders, shop_customers, shop_seed;
CREATE TABLE shop_customers (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    country char(2) NOT NULL,
    created_at timestamptz NOT NULL,
    profile jsonb NOT NULL,
    api_key text NOT NULL
);
CREATE TABLE shop_orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop_customers (id),
    status text NOT NULL,
    total numeric(12, 2) NOT NULL,
    currency char(3) NOT NULL,
    placed_at timestamptz NOT NULL,
    items jsonb NOT NULL,
    note text NOT NULL
);
CREATE TABLE shop_events (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES shop_orders (id),
    kind text NOT NULL,
    at timestamptz NOT NULL,
    ip inet NOT NULL,
    payload jsonb NOT NULL,
    trace text NOT NULL
);
CREATE TABLE shop_seed (size_mb integer NOT NULL);
"""
WORDS = (
    "'{red,green,blue,large,small,cotton,steel,wooden,classic,modern,organic,premium,basic,travel,kitchen,"
    "garden,office,sport,winter,summer,lamp,chair,table,mug,shirt,shoe,bag,book,pen,clock}'::text[]"
)
COUNTRIES = "'{DE,FR,GB,US,NL,SE,PL,ES,IT,CA}'::text[]"
STATUSES = "'{placed,paid,packed,shipped,delivered,delivered,delivered,returned}'::text[]"
KINDS = "'{viewed,carted,paid,shipped,delivered,emailed,refunded}'::text[]"
# Each is one INSERT ... SELECT over generate_series(1, %(n)s); %% escapes a literal percent for psycopg.
FILL = {
    "shop_customers": f"""
INSERT INTO shop_customers
SELECT i, 'customer' || i || '@' || ({WORDS})[1 + i %% 30] || '.example',
       initcap(({WORDS})[1 + (i * 7) %% 30]) || ' ' || initcap(({WORDS})[1 + (i * 13) %% 30]) || ' ' || i,
       ({COUNTRIES})[1 + i %% 10],
       timestamptz '2024-01-01 00:00:00+00' + (random() * 730) * interval '1 day',
       jsonb_build_object('newsletter', i %% 3 = 0, 'tier', ({WORDS})[1 + i %% 5], 'visits', (random() * 500)::int,
                          'tags', jsonb_build_array(({WORDS})[1 + i %% 30], ({WORDS})[1 + (i * 3) %% 30])),
       md5(i::text || random()::text)
  FROM generate_series(1, %(n)s) AS i""",
    "shop_orders": f"""
INSERT INTO shop_orders
SELECT i, 1 + (random() * (%(customers)s - 1))::bigint, ({STATUSES})[1 + i %% 8], round((random() * 500)::numeric, 2),
       CASE WHEN i %% 5 = 0 THEN 'USD' ELSE 'EUR' END,
       timestamptz '2024-01-01 00:00:00+00' + (random() * 730) * interval '1 day',
       jsonb_build_array(
           jsonb_build_object('sku', 'SKU-' || (i %% 5000),
                              'name', ({WORDS})[1 + i %% 30] || ' ' || ({WORDS})[1 + (i * 11) %% 30],
                              'qty', 1 + i %% 4, 'price', round((random() * 100)::numeric, 2)),
           jsonb_build_object('sku', 'SKU-' || (i * 7 %% 5000), 'name', ({WORDS})[1 + (i * 5) %% 30],
                              'qty', 1, 'price', round((random() * 50)::numeric, 2))),
       CASE WHEN i %% 4 = 0 THEN 'please leave the parcel with the neighbour at number ' || (i %% 90) ELSE '' END
  FROM generate_series(1, %(n)s) AS i""",
    "shop_events": f"""
INSERT INTO shop_events
SELECT i, 1 + (random() * (%(orders)s - 1))::bigint, ({KINDS})[1 + i %% 7],
       timestamptz '2024-01-01 00:00:00+00' + (random() * 730) * interval '1 day',
       ('10.' || (i %% 250) || '.' || ((i / 250) %% 250) || '.' || (1 + i %% 200))::inet,
       jsonb_build_object('agent', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/' || (100 + i %% 30),
                          'path', '/shop/' || ({WORDS})[1 + i %% 30] || '/' || (i %% 5000),
                          'ms', (random() * 900)::int),
       md5(random()::text)
  FROM generate_series(1, %(n)s) AS i""",
}
INDEXES = """
CREATE UNIQUE INDEX shop_customers_email ON shop_customers (email);
CREATE INDEX shop_customers_country_created ON shop_customers (country, created_at);
CREATE INDEX shop_orders_customer_placed ON shop_orders (customer_id, placed_at);
CREATE INDEX shop_orders_status ON shop_orders (status) WHERE status <> 'delivered';
CREATE INDEX shop_events_order ON shop_events (order_id);
CREATE INDEX shop_events_at ON shop_events (at);
"""
TABLES = tuple(FILL)


def rows_for(size_mb: float) -> dict[str, int]:
    """How many rows of each table make about size_mb of database (at least one of each)."""
    return {
        "shop_customers": max(1, int(size_mb * CUSTOMERS_PER_MB)),
        "shop_orders": max(1, int(size_mb * ORDERS_PER_MB)),
        "shop_events": max(1, int(size_mb * EVENTS_PER_MB)),
    }


def seeded_size_mb(database_url: str) -> int | None:
    """The size the shop tables were seeded for, or None when they are not (completely) there."""
    with psycopg.connect(database_url) as conn:
        if not conn.execute("SELECT to_regclass('shop_seed')").fetchone()[0]:
            return None
        row = conn.execute("SELECT size_mb FROM shop_seed").fetchone()
    return row[0] if row else None


def seed_database(database_url: str, size_mb: int, *, seed: int = 8) -> dict[str, object]:
    """(Re)create and fill the shop tables for about size_mb (data and indexes); what was made.

    The marker row is written last, in the same transaction: a seed cut short leaves no marker.
    """
    counts = rows_for(size_mb)
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
        conn.execute("SELECT setseed(%s)", [1 / (seed + 2)])
        conn.execute(FILL["shop_customers"], {"n": counts["shop_customers"]})
        conn.execute(FILL["shop_orders"], {"n": counts["shop_orders"], "customers": counts["shop_customers"]})
        conn.execute(FILL["shop_events"], {"n": counts["shop_events"], "orders": counts["shop_orders"]})
        conn.execute(INDEXES)
        conn.execute("INSERT INTO shop_seed (size_mb) VALUES (%s)", [size_mb])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE shop_customers, shop_orders, shop_events")
        [(table_bytes, database_bytes)] = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)), pg_database_size(current_database())"
            " FROM unnest(%s::text[]) AS t(name) JOIN pg_class c ON c.relname = t.name",
            [list(TABLES)],
        ).fetchall()
    return {
        "rows": counts,
        "table_bytes": int(table_bytes),
        "database_bytes": database_bytes,
        "seconds": time.perf_counter() - started,
    }


def ensure_database(database_url: str, size_mb: int) -> None:
    """Seed the shop tables unless they already hold size_mb's worth."""
    if seeded_size_mb(database_url) == size_mb:
        progress(f"shop tables already seeded for {size_mb} MB")
        return
    progress(f"seeding {size_mb} MB of shop tables")
    made = seed_database(database_url, size_mb)
    progress(
        f"seeded {made['table_bytes'] / 2**20:.0f} MB of tables and indexes"
        f" ({made['database_bytes'] / 2**20:.0f} MB the whole database) in {made['seconds']:.1f} s"
    )


def _log_lines(rng: random.Random, count: int) -> bytes:
    paths = ("/shop/cart", "/shop/checkout", "/api/orders", "/api/customers", "/static/app.js", "/login")
    lines = [
        f'{{"ts":"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{rng.randrange(60):02d}Z",'
        f'"level":"{"info" if i % 9 else "warning"}","path":"{paths[i % 6]}","status":{200 if i % 17 else 500},'
        f'"ms":{rng.randrange(2000)},"user":{rng.randrange(100000)},"request_id":"{rng.getrandbits(64):016x}"}}'
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def _csv_rows(rng: random.Random, count: int) -> bytes:
    rows = ["id,sku,name,price,stock,updated"]
    rows += [
        f"{i},SKU-{rng.randrange(5000)},item number {i} in colour {('red', 'green', 'blue')[i % 3]},"
        f"{rng.randrange(100000) / 100:.2f},{rng.randrange(500)},2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for i in range(count)
    ]
    return ("\n".join(rows) + "\n").encode()


def seed_files(folder: Path, size_mb: float, *, seed: int = 8) -> dict[str, int]:
    """About size_mb of files under folder: two thirds text (logs, CSV), one third random; what was made.

    Sizes vary from a few KB to a few MB, in nested folders, as uploads and exports do.
    """
    rng = random.Random(seed)
    target = int(size_mb * 2**20)
    made = {"files": 0, "bytes": 0, "random_bytes": 0}
    while made["bytes"] < target:
        index = made["files"]
        size = min(target - made["bytes"], rng.choice((8, 32, 64, 256, 1024, 4096)) * 1024)
        kind = index % 3
        directory = folder / f"{('logs', 'exports', 'uploads')[kind]}" / f"{index % 10:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        if kind == 2:
            data = rng.randbytes(size)
            made["random_bytes"] += size
            path = directory / f"upload-{index}.bin"
        elif kind == 0:
            data = _log_lines(rng, size // 150 + 1)[:size]
            path = directory / f"app-{index}.jsonl"
        else:
            data = _csv_rows(rng, size // 60 + 1)[:size]
            path = directory / f"export-{index}.csv"
        path.write_bytes(data)
        made["files"] += 1
        made["bytes"] += len(data)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500, help="database size to seed (default 500)")
    parser.add_argument("--files-mb", type=float, default=200, help="files to write (default 200)")
    parser.add_argument("--files", type=Path, help="folder for the files (none written without it)")
    parser.add_argument("--database", default=None, help="database name (default opsportal_bench_backup_<size>)")
    args = parser.parse_args()
    if args.size_mb < 1:
        parser.error("--size-mb must be at least 1")
    url = named_postgres(args.database or f"opsportal_bench_backup_{args.size_mb}")
    made = seed_database(url, args.size_mb)
    print(
        f"database {url}: {made['table_bytes'] / 2**20:.0f} MB of shop tables"
        f" ({made['database_bytes'] / 2**20:.0f} MB in all), rows {made['rows']}, {made['seconds']:.1f} s"
    )
    if args.files:
        files = seed_files(args.files, args.files_mb)
        print(f"files under {args.files}: {files}")


if __name__ == "__main__":
    main()
