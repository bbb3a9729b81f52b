"""Django's settings of the example project, with comet_sync's and Celery's."""

import os

SECRET_KEY = "example-only"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "examples.celery_app.urls"
# The project package is an app too, so that Celery's autodiscover_tasks() finds tasks.py.
INSTALLED_APPS = ["examples.celery_app"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# comet_sync, as comet_sync.contrib.django reads it (a web process's get_client() takes the
# same): the key, the endpoint, CometClient's arguments for each process's client.
COMETAPI_KEY = os.environ.get("COMETAPI_KEY")
COMETAPI_BASE_URL = os.environ.get("COMETAPI_BASE_URL")
COMET_SYNC = {"max_concurrency": 8}  # in flight per process

# Celery (celery.py reads the CELERY_ names). The broker is also the result store, which the
# answer view reads.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The workers' own comet_sync settings, winning key by key over COMET_SYNC: the limit every
# worker of every host shares on the broker's Redis, and the longest server wait a worker
# sleeps through (a longer one requeues the task).
CELERY_COMET_SYNC = {"max_wait": 5.0, "redis": {"max_concurrency": 16}}
