"""The identity domain: users, credentials, sessions and signing keys, free of gRPC and SQL."""
