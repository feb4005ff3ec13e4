"""Is it working: HTTP health probes and the Celery workers' answers."""
