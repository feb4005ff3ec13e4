"""A small FastAPI + Celery application that deploytools deploys in its tests and quick start."""
