"""Checks of the endpoints operators add in the admin (HealthTarget): HTTP(S) URLs and TCP ports.

Every connection goes through the SSRF guard of apps.core.outbound: HTTP(S) with
its request(), TCP by resolving the host once, refusing it if any address is
forbidden, and connecting to an address that was checked. A target marked
internal may reach loopback and private addresses (never cloud metadata ones).
"""

import socket
import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from apps.core.outbound import OutboundBlocked, OutboundError, OutboundTimeout, request
from apps.core.outbound.addresses import refusal_reason, resolve
from apps.health.checks.base import Check, Outcome, Status, critical, graded, registry, worst
from apps.health.models import HealthTarget

MAX_BODY_BYTES = 1024 * 1024
TARGETS_CHECK = "targets"
GRACE_SECONDS = 0.5  # the runner waits this much past a target's timeout, so its own, precise error wins


@registry.provider
def target_checks() -> Iterable[Check]:
    """One check per enabled target, named target:<name>; one critical "targets" check if they cannot be read."""
    try:
        targets = list(HealthTarget.objects.filter(enabled=True))
    except DatabaseError as error:  # the database is down (its own check says so) or not migrated
        reason = " ".join(str(error).split()) or type(error).__name__
        yield Check(TARGETS_CHECK, lambda: critical(f"cannot read the targets: {reason}"))
        return
    for target in targets:
        yield Check(
            target.check_name,
            lambda target=target: check_target(target),
            for_seconds=target.for_seconds,
            alert_on=Status(target.alert_on),
            timeout=target.timeout_seconds + GRACE_SECONDS,
            interval=target.interval_seconds,
            description=target.description or f"{target.get_kind_display()} {target.address}",
        )


def check_target(target: HealthTarget) -> Outcome:
    """The target's outcome now (it is not saved: the caller decides)."""
    if target.kind == HealthTarget.Kind.TCP:
        return check_tcp(target)
    return check_http(target)


def check_http(target: HealthTarget) -> Outcome:
    """The answer's status, the keyword in its body, its latency, and for HTTPS the certificate's days left."""
    try:
        response = request(
            target.method,
            target.url,
            allow_internal=target.is_internal,
            timeout=float(target.timeout_seconds),
            max_body_bytes=MAX_BODY_BYTES,
        )
    except OutboundBlocked as error:
        return critical(f"refused by the outbound policy: {error.reason}", url=error.url)
    except OutboundTimeout as error:
        return critical(f"{error.reason} (limit {target.timeout_seconds} s)", url=error.url)
    except OutboundError as error:
        return critical(error.reason, url=error.url)
    latency = response.elapsed * 1000
    details = {"url": response.url, "status": response.status, "latency_ms": round(latency, 1),
               "address": response.address}  # fmt: skip
    if response.status != target.expected_status:
        return critical(f"HTTP {response.status}, expected {target.expected_status}", **details)
    if target.keyword and target.keyword not in response.text:
        return critical(f"HTTP {response.status} but {target.keyword!r} is not in the response", **details)
    statuses = [_latency(target, latency)]
    parts = [f"HTTP {response.status} in {latency:.0f} ms"]
    if response.certificate_expires is not None:
        days = _days_left(response.certificate_expires)
        details.update(certificate_expires=response.certificate_expires.isoformat(), certificate_days_left=days)
        statuses.append(graded(-days, -target.threshold("cert_warning_days"), -target.threshold("cert_critical_days")))
        parts.append(f"certificate expires in {days} day{'s' if days != 1 else ''}")
    return Outcome(worst(statuses), "; ".join(parts), details)


def check_tcp(target: HealthTarget) -> Outcome:
    """Connect to host:port (and close): refused, blocked or slow is bad."""
    host, port = target.host.strip("[]"), int(target.port)
    deadline = time.monotonic() + target.timeout_seconds
    started = time.perf_counter()
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return critical(f"{host} does not resolve")
    for address in addresses:
        reason = refusal_reason(
            address, allow_internal=target.is_internal, internal_networks=settings.OUTBOUND_INTERNAL_NETWORKS
        )
        if reason:
            return critical(f"refused by the outbound policy: {reason}", host=host, port=port)
    error: OSError | None = None
    for address in addresses:  # like socket.create_connection: the next address if one fails
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            socket.create_connection((str(address), port), timeout=left).close()
        except OSError as failure:
            error = failure
            continue
        latency = (time.perf_counter() - started) * 1000
        return Outcome(_latency(target, latency), f"connected to {address} port {port} in {latency:.0f} ms",
                       {"address": str(address), "port": port, "latency_ms": round(latency, 1)})  # fmt: skip
    if isinstance(error, TimeoutError) or error is None:
        return critical(f"timed out connecting to {host} port {port} (limit {target.timeout_seconds} s)")
    return critical(f"cannot connect to {host} port {port}: {error.strerror or error}", host=host, port=port)


def _latency(target: HealthTarget, ms: float) -> Status:
    return graded(ms, target.threshold("latency_warning_ms"), target.threshold("latency_critical_ms"))


def _days_left(expires: datetime) -> int:
    return int((expires - timezone.now()).total_seconds() // 86400)
