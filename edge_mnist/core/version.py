"""The package version, in a leaf module so that records and exporters can stamp it without importing the
package root (which imports every stage)."""
__version__ = "0.9.0"
