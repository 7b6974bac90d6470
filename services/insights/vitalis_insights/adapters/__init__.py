"""Adapters to the world outside the insights service: other services' contracts, language models."""
