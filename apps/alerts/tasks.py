from celery import shared_task

from apps.alerts import delivery, services


@shared_task
def alerts_tick() -> dict:
    """Every ALERTS_TICK_SECONDS: due group notifications, escalations and reminders; then the delivery sweep."""
    done = services.tick()
    done["dispatched"] = delivery.sweep()
    return done


@shared_task
def deliver_task(notification_ids: list[int]) -> None:
    """Send these notifications: queued after the transaction that wrote them, or by the sweep.

    No retries here: a row that fails is rescheduled in the database, and a task
    lost with its worker is made good by the sweep once the row's lease runs out.
    """
    delivery.deliver(notification_ids)
