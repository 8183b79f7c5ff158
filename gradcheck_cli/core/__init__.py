"""Data and rules: indexing, limits, the methods, the estimates, the pass rule, results and options.

The lowest floor: it imports nothing of the package above it."""
