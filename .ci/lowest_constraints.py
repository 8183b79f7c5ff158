"""Print pip constraints pinning every dependency (run time, test and dask) to the lowest
version pyproject.toml allows, so CI can prove those lower bounds are true."""

import re
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["test"] + extras["dask"]:
    found = re.fullmatch(
        r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,\s*<\s*[0-9][0-9A-Za-z.]*\s*)?", requirement
    )
    if not found:
        raise SystemExit(f"cannot read a lower bound from {requirement!r}; write it as NAME>=VERSION[,<VERSION]")
    name = found.group(1).split("[")[0]
    print(f"{name}=={found.group(2)}")
