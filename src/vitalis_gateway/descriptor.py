"""The descriptor set Envoy's transcoder reads.

It is the contracts' set without comments (Envoy never reads them, and the Kubernetes copy must fit
in a ConfigMap), plus ``google/rpc/status.proto`` and ``error_details.proto`` so the transcoder can
print the ``ErrorInfo`` and ``BadRequest`` details of an error as JSON even when no contract
imports them.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

_ERROR_FILES = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR)


def gateway_descriptor_set(contracts: descriptor_pb2.FileDescriptorSet) -> bytes:
    """Serialise (deterministically) the set Envoy needs: no source info, error types included.

    Files keep a dependency-first order, which Envoy needs to build its descriptor pool.
    """
    result = descriptor_pb2.FileDescriptorSet()
    present = {file.name for file in contracts.file}
    for file in contracts.file:
        copy = result.file.add()
        copy.CopyFrom(file)
        copy.ClearField("source_code_info")
    for extra in _ERROR_FILES:
        for dependency in (*extra.dependencies, extra):
            if dependency.name in present:
                continue
            proto = descriptor_pb2.FileDescriptorProto()
            dependency.CopyToProto(proto)
            result.file.append(proto)
            present.add(dependency.name)
    return result.SerializeToString(deterministic=True)
