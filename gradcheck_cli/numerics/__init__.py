"""Numerics: steps, difference formulas, the adaptive ladder, the screen, noise and the Taylor test.

Pure functions of an ``Evaluate`` callable: they never call user code themselves."""
