"""Settings of the example project: comet_sync as an app, its middleware, its settings."""

import os

SECRET_KEY = "example-only"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = ["comet_sync.contrib.django"]
MIDDLEWARE = ["comet_sync.contrib.django.CometSyncMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# The key: COMETAPI_KEY here or in the environment (run.py fills both in for the fake server).
COMETAPI_KEY = os.environ.get("COMETAPI_KEY")
COMETAPI_BASE_URL = os.environ.get("COMETAPI_BASE_URL")
COMET_SYNC = {
    "max_concurrency": 8,  # per worker process
    "view_deadline": 25,  # every call of one request fits in 25 s
}
