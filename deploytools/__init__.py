"""deploytools: deploy, roll back and verify a web stack from invoke tasks."""

__version__ = "0.1.0"
