"""The documents domain: documents, extracted lab results and their review. No gRPC, no SQL."""
