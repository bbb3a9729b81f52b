"""Django's command line for the project: ``python -m examples.celery_app.manage runserver``
(from the repository's root)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.celery_app.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
