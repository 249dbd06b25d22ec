"""Presentation: terminal and CI tables, JSON/JUnit reports, and pictures. No stage logic."""
