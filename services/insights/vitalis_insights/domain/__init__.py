"""The insights domain: rules, statistics, sleep scoring, goals and texts, free of gRPC and SQL."""
