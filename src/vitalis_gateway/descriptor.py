"""The descriptor set Envoy's transcoder reads.

It is the contracts' set without comments (Envoy never reads them, and the Kubernetes copy must fit
in a ConfigMap), plus ``google/rpc/status.proto`` and ``error_details.proto`` so the transcoder can
print the ``ErrorInfo`` and ``BadRequest`` details of an error as JSON even when no contract
imports them.

The bytes must not depend on which ``*_pb2`` modules the running process happens to have imported:
protobuf serialises a custom option (``google.api.http``, ``google.api.resource``, ...) in field
order when its extension is registered and at the end when it is not. The set is therefore
re-encoded with message classes of a private pool built from the set itself, where every option
the contracts use is a known extension.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

_ERROR_FILES = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR)
_FILE_DESCRIPTOR_SET = "google.protobuf.FileDescriptorSet"


def gateway_descriptor_set(contracts: descriptor_pb2.FileDescriptorSet) -> bytes:
    """Serialise (deterministically) the set Envoy needs: no source info, error types included.

    Files keep a dependency-first order, which Envoy needs to build its descriptor pool.
    """
    files = list(contracts.file)
    present = {file.name for file in files}
    for extra in _ERROR_FILES:
        for dependency in (*extra.dependencies, extra):
            if dependency.name in present:
                continue
            proto = descriptor_pb2.FileDescriptorProto()
            dependency.CopyToProto(proto)
            files.append(proto)
            present.add(dependency.name)
    canonical_set = _self_describing_set_class(files)
    result = canonical_set.FromString(descriptor_pb2.FileDescriptorSet(file=files).SerializeToString())
    for file in result.file:
        file.ClearField("source_code_info")
    encoded: bytes = result.SerializeToString(deterministic=True)
    return encoded


def _self_describing_set_class(files: list[descriptor_pb2.FileDescriptorProto]) -> Any:
    """``FileDescriptorSet`` from a pool of ``files``, with every extension they define registered."""
    classes = message_factory.GetMessages(files, pool=descriptor_pool.DescriptorPool())
    return classes[_FILE_DESCRIPTOR_SET]
