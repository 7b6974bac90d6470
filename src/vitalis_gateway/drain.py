"""The gateway pod's preStop hook: take Envoy out of rotation and drain it before SIGTERM.

Kubernetes runs the hook while it removes the pod from its Service's endpoints, and sends SIGTERM
only once the hook has returned; Envoy exits at once on SIGTERM. So the hook, through Envoy's
admin interface:

1. fails Envoy's health check (``POST /healthcheck/fail``): ``/readyz`` answers 503, and the
   readiness probe keeps the pod out of the endpoints;
2. starts a graceful drain of the listeners (``POST /drain_listeners?graceful``): HTTP/1.1
   responses carry ``connection: close`` and HTTP/2 clients get GOAWAY, so clients reconnect to
   other replicas while the requests already in flight finish; Envoy stops its listeners after its
   ``--drain-time-s``;
3. returns ``--seconds`` after it started, which ``make k8s-validate`` holds to at least Envoy's
   ``--drain-time-s`` and, with a margin, within ``terminationGracePeriodSeconds``.

When the admin interface does not answer, the failure goes to stderr and the hook still waits (the
pod is going away regardless, and the wait still gives clients time to see the endpoint removed);
it then exits 1, so that Kubernetes records a ``FailedPreStopHook`` event.

    python -m vitalis_gateway.drain --admin http://127.0.0.1:9901 --seconds 15
"""

from __future__ import annotations

import argparse
import http.client
import logging
import math
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence

DRAIN_STEPS = ("/healthcheck/fail", "/drain_listeners?graceful")
"""Admin endpoints posted to, in order."""
ADMIN_TIMEOUT_SECONDS = 2.0
"""How long each admin request may take; the wait is counted from the hook's start regardless."""

logger = logging.getLogger(__name__)


def start_drain(admin: str, *, timeout: float = ADMIN_TIMEOUT_SECONDS) -> bool:
    """Fail Envoy's health check and start a graceful drain of its listeners.

    ``admin`` is the admin interface's base URL. Each step is tried even if the other failed;
    failures are logged. Returns whether both steps succeeded.
    """
    succeeded = True
    for path in DRAIN_STEPS:
        url = admin.rstrip("/") + path
        # ``parse_arguments`` admits only http(s) admin URLs.
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310
                pass
        except (OSError, http.client.HTTPException) as error:
            # One line per failed step is what the FailedPreStopHook event should show, not a traceback.
            logger.error("POST %s failed: %s", url, error)  # noqa: TRY400
            succeeded = False
    return succeeded


def drain(admin: str, seconds: float, *, timeout: float = ADMIN_TIMEOUT_SECONDS) -> bool:
    """Start the drain, then return ``seconds`` after the call began; whether the admin accepted it."""
    deadline = time.monotonic() + seconds
    succeeded = start_drain(admin, timeout=timeout)
    time.sleep(max(0.0, deadline - time.monotonic()))
    return succeeded


def _admin_url(value: str) -> str:
    if urllib.parse.urlsplit(value).scheme not in {"http", "https"}:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value


def _seconds(value: str) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}")
    return seconds


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--admin URL --seconds N``, both required."""
    parser = argparse.ArgumentParser(
        prog="python -m vitalis_gateway.drain",
        description="Fail Envoy's health check, drain its listeners gracefully, and wait.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--admin", required=True, type=_admin_url, help="Envoy's admin URL, e.g. http://127.0.0.1:9901"
    )
    parser.add_argument(
        "--seconds",
        required=True,
        type=_seconds,
        help="how long the hook lasts; at least Envoy's --drain-time-s",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hook; exit code 0, or 1 when the admin interface did not accept the drain."""
    arguments = parse_arguments(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s: %(message)s")
    return 0 if drain(arguments.admin, arguments.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
