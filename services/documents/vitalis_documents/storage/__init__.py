"""Where uploaded bytes live: one interface, a local-disk and an S3-compatible backend."""

from vitalis_documents.storage.base import ObjectStorage, ObjectWriter, content_key

__all__ = ["ObjectStorage", "ObjectWriter", "content_key"]
