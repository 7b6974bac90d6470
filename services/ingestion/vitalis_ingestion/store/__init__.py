"""All SQL of the ingestion service, a module per resource; returns domain objects, knows nothing of gRPC."""
