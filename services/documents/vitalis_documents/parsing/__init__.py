"""Reading lab results out of documents: text with positions, layout analysis, a sandboxed runner."""

PARSER_VERSION = "1.0.0"
"""The version of the extraction rules; documents parsed by an older one can be re-parsed."""
