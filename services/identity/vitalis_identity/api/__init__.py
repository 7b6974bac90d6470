"""gRPC servicers: translate between protobuf messages and the identity domain, nothing more."""
