"""The gRPC servicers of the documents contract: they translate protobuf to and from the domain."""
