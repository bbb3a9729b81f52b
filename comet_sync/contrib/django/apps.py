from django.apps import AppConfig


class CometSyncConfig(AppConfig):
    name = "comet_sync.contrib.django"
    label = "comet_sync"
    verbose_name = "comet_sync"
