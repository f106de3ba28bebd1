"""Observability plumbing every process shares: tracing setup and Prometheus metrics."""
