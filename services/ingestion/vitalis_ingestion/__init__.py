"""The ingestion service of Vitalis."""
