"""The extraction benchmark: generated lab-report PDFs with ground truth, and per-field scores.

``python -m vitalis_documents.extraction_bench`` generates the corpus, parses every report with the
service's parser and prints precision and recall per field.
"""
