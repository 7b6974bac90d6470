"""gRPC servicers of the ingestion contract: they translate between protobuf and the domain, nothing more."""
