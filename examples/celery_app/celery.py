"""The project's Celery app: its settings are Django's ``CELERY_`` names, comet_sync set up."""

from __future__ import annotations

import os

from celery import Celery

from comet_sync.contrib import celery as comet_celery

# A worker starts without manage.py: it names the settings itself, before the app reads them.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.celery_app.settings")

app = Celery("celery_app")
# CELERY_BROKER_URL becomes broker_url, CELERY_COMET_SYNC comet_sync (read by setup's client).
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each worker process gets its own client, after the fork, with a limit shared on the broker's
# Redis; it reads CELERY_COMET_SYNC, then Django's COMET_SYNC and COMETAPI_KEY.
comet_celery.setup(app)
# The tasks.py of every installed app (this project package is one).
app.autodiscover_tasks()
