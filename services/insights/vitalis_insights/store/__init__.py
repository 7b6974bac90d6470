"""All SQL of the insights service: each module owns the statements of one resource."""
