"""The portal's settings, with the benchmark's trivial view in the URLconf."""

from opsportal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
