"""The database: the latency of a trivial query and, on PostgreSQL, the client connections open."""

import time

from django.db import connection

from apps.metrics.collectors.base import Collector, Tick, Values, registry


@registry.register
class DatabaseCollector(Collector):
    name = "database"

    def collect(self, tick: Tick) -> Values:
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            values = {"db.query.ms": (time.perf_counter() - started) * 1000}
            if connection.vendor == "postgresql":
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
                values["db.connections"] = cursor.fetchone()[0]
        return values
