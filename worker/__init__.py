"""Celery workers, the dispatcher, providers and the Aivvm-protocol emulator."""
