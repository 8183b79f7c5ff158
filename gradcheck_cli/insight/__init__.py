"""Insight: the diagnosis of a failing check, the derivation explained with its shapes,
and the zoo of shape-correct mistakes."""
