"""The WSGI entry point gunicorn loads in each worker: `service.wsgi:create_app()`."""

from service.api.app import create_app

__all__ = ["create_app"]
