"""Shared plumbing at the bottom of the import order: errors, strict JSON records, files and locks, progress,
timing, the machine, TensorFlow's environment and the version. Nothing here imports another part of edge_mnist."""
