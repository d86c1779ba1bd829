"""The inbound hook views, one module per hook; each is wrapped by apps.hooks.inbound.hook()."""
