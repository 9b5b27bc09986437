"""A minimal Django project whose data lives in Chakra models, beside (not instead of)
Django's own ORM. ``CHAKRA_DATABASE_URL`` (else ``DATABASE_URL``) names Chakra's
database; ``users.apps.UsersConfig.ready`` hands it to ``chakra.configure``."""

from __future__ import annotations

import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["users.apps.UsersConfig"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
ASGI_APPLICATION = "mysite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]

# Django's own ORM is not used by this example.
DATABASES: dict[str, dict[str, str]] = {}

CHAKRA_DATABASE_URL = os.environ.get("CHAKRA_DATABASE_URL") or os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

USE_TZ = True
