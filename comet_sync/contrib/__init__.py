"""Optional integrations, each importing its library lazily: ``comet_sync.contrib.flask``,
``comet_sync.contrib.django``, ``comet_sync.contrib.celery``, ``comet_sync.contrib.prometheus``,
``comet_sync.contrib.redis``, ``comet_sync.contrib.otel``."""
