"""A minimal Django project for the integration tests."""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.djangoproj.urls"
INSTALLED_APPS = ["comet_sync.contrib.django"]
MIDDLEWARE = ["comet_sync.contrib.django.CometSyncMiddleware"]
DATABASES: dict = {}
USE_TZ = True
COMETAPI_KEY = "django-test-key-0123456789"
COMETAPI_BASE_URL = "http://127.0.0.1:9/v1"  # the tests point it at their fake server
COMET_SYNC = {"max_concurrency": 4, "view_deadline": 2, "max_wait": 30}
