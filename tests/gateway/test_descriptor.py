"""The descriptor set handed to Envoy is the same bytes in every process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from vitalis_gateway.descriptor import gateway_descriptor_set

REPOSITORY = Path(__file__).resolve().parents[2]
CONTRACTS = REPOSITORY / "gen" / "descriptors" / "vitalis.binpb"
FRESH_PROCESS = """
import sys
from pathlib import Path
from google.protobuf import descriptor_pb2
from vitalis_gateway.descriptor import gateway_descriptor_set
contracts = descriptor_pb2.FileDescriptorSet.FromString(Path(sys.argv[1]).read_bytes())
sys.stdout.buffer.write(gateway_descriptor_set(contracts))
"""


def test_descriptor_bytes_do_not_depend_on_which_option_modules_are_imported() -> None:
    # Importing a contract registers google.api.resource and friends as known extensions here.
    from vitalis.identity.v1 import user_pb2

    assert user_pb2.DESCRIPTOR.name
    contracts = descriptor_pb2.FileDescriptorSet.FromString(CONTRACTS.read_bytes())
    in_this_process = gateway_descriptor_set(contracts)
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(CONTRACTS)], capture_output=True, check=True, timeout=60
    ).stdout

    assert in_this_process == fresh


def test_descriptor_set_has_no_comments_and_carries_the_error_detail_types() -> None:
    encoded = gateway_descriptor_set(descriptor_pb2.FileDescriptorSet.FromString(CONTRACTS.read_bytes()))
    files = descriptor_pb2.FileDescriptorSet.FromString(encoded).file

    assert not any(file.HasField("source_code_info") for file in files)
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto"} <= {file.name for file in files}
