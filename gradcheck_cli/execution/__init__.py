"""Execution: calling user code, reading what it returns, runners (this process, worker
processes, Dask), checkpoints and the time budget."""
