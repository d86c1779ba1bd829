"""PostgreSQL: one generic trigger function, attached to each registered table."""

from apps.audit.registry import Registration

# TG_ARGV: resource type, pk column, repr column, redacted columns, ignored columns, password column.
CAPTURE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION opsportal_audit_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ctx jsonb := coalesce(nullif(current_setting('opsportal.audit_context', true), '')::jsonb, '{}'::jsonb);
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    any_row jsonb := coalesce(new_row, old_row);
    redacted text[] := string_to_array(TG_ARGV[3], ',');
    ignored text[] := string_to_array(TG_ARGV[4], ',');
    diff jsonb;
    verb text;
BEGIN
    SELECT coalesce(jsonb_object_agg(key, jsonb_build_array(
               CASE WHEN key = ANY(redacted) AND old_row -> key <> 'null' THEN to_jsonb('***'::text)
                    ELSE old_row -> key END,
               CASE WHEN key = ANY(redacted) AND new_row -> key <> 'null' THEN to_jsonb('***'::text)
                    ELSE new_row -> key END)), '{}'::jsonb)
      INTO diff
      FROM jsonb_object_keys(any_row) AS key
     WHERE NOT key = ANY(ignored) AND (old_row -> key) IS DISTINCT FROM (new_row -> key);
    IF TG_OP = 'UPDATE' AND diff = '{}'::jsonb THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_ARGV[5] <> '' AND diff ? TG_ARGV[5] THEN
        verb := 'auth.password_change';
    ELSIF ctx ->> 'channel' = 'admin' THEN
        verb := 'admin.' || CASE TG_OP WHEN 'INSERT' THEN 'add' WHEN 'UPDATE' THEN 'change' ELSE 'delete' END;
    ELSE
        verb := 'model.' || CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END;
    END IF;
    INSERT INTO audit_auditevent (timestamp, actor_id, actor_username, action, outcome, resource_type,
                                  resource_id, resource_repr, changes, details, ip, user_agent, request_id,
                                  prev_hash, hash)
    VALUES (clock_timestamp(), (ctx ->> 'user_id')::bigint,
            coalesce(nullif(ctx ->> 'username', ''), 'db:' || session_user),
            verb, 'success', TG_ARGV[0], coalesce(any_row ->> TG_ARGV[1], ''),
            left(coalesce(any_row ->> TG_ARGV[2], ''), 200), diff,
            CASE WHEN ctx = '{}'::jsonb
                 THEN jsonb_build_object('outside_the_portal', true, 'database_user', session_user,
                                         'client_address', host(inet_client_addr()))
                 ELSE '{}'::jsonb END,
            (ctx ->> 'ip')::inet, coalesce(ctx ->> 'user_agent', ''), coalesce(ctx ->> 'request_id', ''), '', '');
    RETURN NULL;
END
$$;
"""

# Sealed events never change, unsealed ones only get sealed; deletes only through the prune function.
GUARD_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION opsportal_audit_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq IS NOT NULL OR NEW.seq IS NULL
       OR (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') IS DISTINCT FROM (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash')
    THEN
        RAISE EXCEPTION 'audit events are append-only: event % cannot be changed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION opsportal_audit_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'opsportal_audit_owner' THEN
        RAISE EXCEPTION 'audit events are append-only: only `manage.py audit prune` removes them'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$;

CREATE OR REPLACE TRIGGER opsportal_audit_guard_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION opsportal_audit_guard_update();
CREATE OR REPLACE TRIGGER opsportal_audit_guard_delete BEFORE DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION opsportal_audit_guard_delete();
CREATE OR REPLACE TRIGGER opsportal_audit_guard_checkpoint BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION opsportal_audit_guard_delete();
"""


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def trigger_sql(registration: Registration) -> list[str]:
    arguments = ", ".join(
        _quoted(value)
        for value in (
            registration.label,
            registration.pk_column,
            registration.repr_column,
            ",".join(sorted(registration.redacted)),
            ",".join(sorted(registration.ignored)),
            registration.password_column,
        )
    )
    return [
        f'CREATE OR REPLACE TRIGGER opsportal_audit_capture AFTER INSERT OR UPDATE OR DELETE ON "{registration.table}" '
        f"FOR EACH ROW EXECUTE FUNCTION opsportal_audit_capture({arguments})"
    ]


# For a hardened deployment: migrations run as the tables' owner, the portal as
# a role with these privileges. That role cannot change or delete audit events,
# nor switch the guards off (it owns no table, and is no superuser).
RUNTIME_GRANTS = """
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent, audit_auditcheckpoint FROM {role};
GRANT UPDATE (seq, prev_hash, hash) ON audit_auditevent TO {role};
GRANT EXECUTE ON FUNCTION opsportal_audit_prune(bigint, interval) TO {role};
"""


def runtime_grants(role: str) -> str:
    if not role.replace("_", "").isalnum():
        raise ValueError(f"{role!r} is not a plain role name")
    return RUNTIME_GRANTS.format(role=f'"{role}"').strip()


# The sanctioned prune path. It runs as opsportal_audit_owner, the only role the
# delete guard lets through, and never removes events younger than min_age.
PRUNE_FUNCTION = r"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsportal_audit_owner') THEN
        CREATE ROLE opsportal_audit_owner NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database of this cluster created it meanwhile
END
$$;

CREATE OR REPLACE FUNCTION opsportal_audit_prune(upto bigint, min_age interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    last_hash text;
    removed bigint;
BEGIN
    IF min_age < interval '1 day' THEN
        RAISE EXCEPTION 'audit events younger than a day are never pruned';
    END IF;
    IF EXISTS (SELECT 1 FROM audit_auditevent WHERE seq <= upto AND timestamp > now() - min_age) THEN
        RAISE EXCEPTION 'refusing to prune events younger than %', min_age;
    END IF;
    SELECT hash INTO last_hash FROM audit_auditevent WHERE seq = upto;
    IF last_hash IS NULL THEN
        RAISE EXCEPTION 'there is no sealed audit event %', upto;
    END IF;
    DELETE FROM audit_auditevent WHERE seq <= upto;
    GET DIAGNOSTICS removed = ROW_COUNT;
    INSERT INTO audit_auditcheckpoint (seq, hash, pruned, created_at) VALUES (upto, last_hash, removed, now());
    RETURN removed;
END
$$;

REVOKE ALL ON FUNCTION opsportal_audit_prune(bigint, interval) FROM PUBLIC;
GRANT SELECT, DELETE ON audit_auditevent TO opsportal_audit_owner;
GRANT SELECT, INSERT ON audit_auditcheckpoint TO opsportal_audit_owner;
GRANT USAGE ON SEQUENCE audit_auditcheckpoint_id_seq TO opsportal_audit_owner;
ALTER FUNCTION opsportal_audit_prune(bigint, interval) OWNER TO opsportal_audit_owner;
GRANT EXECUTE ON FUNCTION opsportal_audit_prune(bigint, interval) TO CURRENT_USER;
"""
