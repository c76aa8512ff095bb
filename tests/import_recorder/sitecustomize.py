"""Records which ``stages.*`` modules a stage process imported (tests/test_import_closure.py).

Python imports ``sitecustomize`` from its path at start-up; the tiny DAG run of the tests
(tests.dag_tools.run_tiny_dag) puts this folder on PYTHONPATH and names a folder in
BACKDROP_IMPORT_LOG. Each ``python -m stages.<name>`` process then writes, at exit, its
arguments and the ``stages`` modules it imported to one JSON file there. Any other process
(Snakemake itself, DVC) records nothing.
"""

import atexit
import json
import os
import sys
import time


def _record() -> None:
    folder = os.environ.get("BACKDROP_IMPORT_LOG")
    entry = sys.argv[0] if sys.argv else ""
    if not folder or "/stages/" not in entry.replace(os.sep, "/"):
        return
    # A copy first: a thread still importing at exit must not change the dict under the loop.
    names = list(sys.modules.copy())
    modules = sorted(name for name in names if name == "stages" or name.startswith("stages."))
    text = json.dumps({"argv": sys.argv[1:], "entry": entry, "modules": modules})
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{os.getpid()}-{time.time_ns()}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


if os.environ.get("BACKDROP_IMPORT_LOG"):
    atexit.register(_record)
