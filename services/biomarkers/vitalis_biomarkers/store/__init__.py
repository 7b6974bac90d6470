"""All SQL of the biomarkers service."""
