"""The ``vitalis`` command: run the whole platform locally, migrate, mint tokens and seed demo data.

:class:`~vitalis_cli.platform.Platform` is the supervisor behind ``vitalis run`` and the end-to-end
tests: it migrates the schemas, starts the five services and Envoy, and stops them in order.
"""
