"""Rendering: rich tables, JSON, JUnit, progress, terminal charts and images.  No maths here."""
