"""All SQL of the ingestion service, one module per resource. Returns domain objects; knows nothing of gRPC."""
