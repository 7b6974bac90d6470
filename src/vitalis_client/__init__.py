"""Client side of Vitalis' gRPC services for internal callers.

``create_channel(target)`` gives a ``grpc.aio.Channel`` for the typed stubs in ``gen/python``
(``vitalis.<service>.v1.*_pb2_grpc``), with retries on UNAVAILABLE, default deadlines and the
current request's identity, request id and trace context forwarded.
"""

from vitalis_client.channel import DEFAULT_SERVICE_CONFIG, create_channel
from vitalis_client.interceptors import PropagatingClientInterceptor

__all__ = ["DEFAULT_SERVICE_CONFIG", "PropagatingClientInterceptor", "create_channel"]
