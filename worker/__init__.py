"""Celery workers, the streaming runtime, the dispatcher and the upstream providers."""
