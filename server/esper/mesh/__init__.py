"""Server plumbing shared by every Esper gRPC service: build, serve, stop, map errors."""
