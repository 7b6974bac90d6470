"""Servicers: translate between protobuf and the domain."""
