"""Celery: tasks waiting in the broker's default queue.

Active tasks and failures are counted in the workers themselves (signal
handlers in apps.metrics.apps register them as readings): asking every worker
over the broker (inspect().active()) takes a broadcast round trip with a timeout
of its own, too slow and too heavy for a one-second tick.
"""

from celery import current_app
from kombu.exceptions import ChannelError

from apps.metrics.collectors.base import Collector, Tick, Values, registry

PING_TIMEOUT = 2.0  # seconds to wait for a free connection of the pool


@registry.register
class CeleryQueueCollector(Collector):
    name = "celery"

    def collect(self, tick: Tick) -> Values:
        app = current_app
        # From the app's pool: a broker connection set up per tick cost 8 ms (bench/metrics_collect.py).
        with app.pool.acquire(block=True, timeout=PING_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=0)  # one attempt: a dead broker fails this collector fast
            try:
                waiting = connection.default_channel.queue_declare(
                    queue=app.conf.task_default_queue, passive=True
                ).message_count
            except ChannelError:  # Redis keeps no key for an empty queue
                waiting = 0
        return {"celery.queue.depth": waiting}
