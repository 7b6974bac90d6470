"""The ingestion domain: metrics, samples, records and importers' rules, free of gRPC and SQL."""
