"""The registries ("add one entry"): artifact formats and runtimes, datasets, architectures."""
