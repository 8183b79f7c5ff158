"""Checks: the one measurement pipeline and its front ends (gradients, VJP/JVP,
Jacobians, Hessians), user functions, the sweep, the zoo run and the pytest helpers."""
