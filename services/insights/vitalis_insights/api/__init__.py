"""gRPC servicers of the insights contract: they translate protobuf to the domain and back."""
