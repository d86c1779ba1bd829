"""Which models are audited: every insert, update and delete of their rows, by any code path.

Capture happens in the database (triggers installed after each migrate), so
QuerySet.update(), bulk_create(), bulk_update() and raw SQL are recorded too.
Later apps register their models in their AppConfig.ready().
"""

import functools
from dataclasses import dataclass

from django.db import models

from apps.core.redaction import is_sensitive_key


@dataclass(frozen=True)
class Registration:
    label: str  # app_label.model_name, the events' resource_type
    table: str
    pk_column: str
    columns: tuple[str, ...]
    repr_column: str
    redacted: frozenset[str]  # values recorded as ***
    ignored: frozenset[str]  # changes to these alone are not recorded
    password_column: str  # a change of it is recorded as auth.password_change


_registry: dict[str, Registration] = {}


def register(
    model: type[models.Model],
    *,
    repr_field: str,
    redact: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
    password_field: str = "",
) -> None:
    """Audit every change of model's rows. Fields that look secret are redacted even when not named."""
    meta = model._meta
    columns = tuple(field.column for field in meta.concrete_fields)
    column = {field.name: field.column for field in meta.concrete_fields}
    redacted = {column[name] for name in redact} | {name for name in columns if is_sensitive_key(name)}
    _registry[meta.label_lower] = Registration(
        label=meta.label_lower,
        table=meta.db_table,
        pk_column=meta.pk.column,
        columns=columns,
        repr_column=column[repr_field],
        redacted=frozenset(redacted),
        ignored=frozenset(column[name] for name in ignore),
        password_column=column[password_field] if password_field else "",
    )
    audited_tables.cache_clear()


def registrations() -> list[Registration]:
    return list(_registry.values())


def by_label(label: str) -> Registration | None:
    return _registry.get(label)


@functools.cache  # looked up on every write statement; registrations happen once, at start-up
def audited_tables() -> frozenset[str]:
    return frozenset(registration.table for registration in _registry.values())
