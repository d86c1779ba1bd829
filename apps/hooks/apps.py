from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "apps.hooks"
    label = "hooks"
    verbose_name = "API and hooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from apps.audit import registry
        from apps.core import prometheus
        from apps.hooks import inbound, tokens
        from apps.hooks.models import AlertmanagerReceiver, ApiToken, Heartbeat, WebhookEndpoint

        # Creation, scope changes and revocation are audited; use is bookkeeping.
        registry.register(ApiToken, repr_field="name", redact=("digest",), ignore=("last_used_at", "last_used_ip"))
        registry.register(
            AlertmanagerReceiver, repr_field="name", redact=("token_digest",), ignore=("last_received_at",)
        )
        registry.register(
            WebhookEndpoint, repr_field="name", redact=("secret", "previous_secret"), ignore=("last_received_at",)
        )
        registry.register(Heartbeat, repr_field="name", ignore=("status", "last_ping_at", "last_start_at", "deadline"))
        # Refused hook requests on /metrics, by hook and reason.
        prometheus.register(*inbound.FAMILIES)
        # A web process reusing a token it looked up (API_TOKEN_CACHE_SECONDS) looks it up again after any change
        # to a token or a user: a deactivated user's tokens stop working at once everywhere.
        for model in (ApiToken, get_user_model()):
            for signal in (post_save, post_delete):
                signal.connect(tokens.tokens_changed, sender=model, dispatch_uid=f"tokens_changed_{model._meta.label}")
