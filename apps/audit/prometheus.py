"""The audit trail on /metrics: events recorded so far (a counter that survives pruning)."""

from django.db.models import Max

from apps.audit.models import AuditCheckpoint, AuditEvent
from apps.core.prometheus import Family, Samples


def events_recorded() -> Samples:
    # Not COUNT(*): it scans the whole table, and pruning would make it go down. The sealed chain
    # numbers events 1, 2, 3... (seq, indexed), and the few not sealed yet are counted by that index.
    # A prune that removed every event leaves its checkpoint's seq.
    sealed = max(
        AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0,
        AuditCheckpoint.objects.aggregate(last=Max("seq"))["last"] or 0,
    )
    waiting = AuditEvent.objects.filter(seq__isnull=True).count()
    return [((), float(sealed + waiting))]


FAMILIES = (
    Family(
        "opsportal_audit_events",
        "Audit events recorded since the trail began (sealed into the chain or waiting to be).",
        events_recorded,
        kind="counter",
    ),
)
