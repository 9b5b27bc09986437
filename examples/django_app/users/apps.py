from django.apps import AppConfig
from django.conf import settings

import chakra


class UsersConfig(AppConfig):
    """Points Chakra's default database at ``settings.CHAKRA_DATABASE_URL`` at start-up."""

    name = "users"

    def ready(self) -> None:
        chakra.configure(settings.CHAKRA_DATABASE_URL)
