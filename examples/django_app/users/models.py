"""Chakra models (Django's ``models.py`` is just where a reader looks for them)."""

from chakra import Boolean, Field, Integer, Model, String


class User(Model):
    __tablename__ = "django_example_users"
    id = Field(Integer, primary_key=True)
    name = Field(String(100))
    is_active = Field(Boolean, default=True)
