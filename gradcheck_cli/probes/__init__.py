"""Probes: what evaluates a function at moved points for the checks (the plain loop,
vector functions column by column, and the MLP's incremental engine with its cost model)."""
