"""Urabrask: the characterization engine. Benchmarks compiled kernels in a sandbox, rejects
unsafe ones, and tags the rest by how they compare with their peers (docs/assets.md)."""
