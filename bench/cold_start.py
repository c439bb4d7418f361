"""Cold-start cost of the app's entry point: import time of `function_app` against a bare
azure-functions app, each in a fresh interpreter, several times. Prints medians and their ratio.

    .venv/bin/python bench/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = textwrap.dedent("""
    import time
    t = time.perf_counter()
    import azure.functions as func
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    @app.route(route="health")
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")
    print(time.perf_counter() - t)
""")

OURS = textwrap.dedent("""
    import time
    t = time.perf_counter()
    import function_app
    print(time.perf_counter() - t)
""")

HEAVY = ("azure.data.tables", "msal", "jwt", "cryptography", "requests")
LOADED = "import sys, function_app; print(','.join(m for m in {heavy!r} if m in sys.modules))"


def _time(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    _time(OURS)  # warm the file-system cache and the bytecode
    _time(BARE)
    bare = statistics.median(_time(BARE) for _ in range(runs))
    ours = statistics.median(_time(OURS) for _ in range(runs))
    loaded = subprocess.run([sys.executable, "-c", LOADED.format(heavy=HEAVY)], cwd=ROOT, check=True,  # noqa: S603
                            capture_output=True, text=True).stdout.strip()
    print(f"bare azure-functions app import: {bare * 1000:7.1f} ms (median of {runs})")
    print(f"function_app import:             {ours * 1000:7.1f} ms (median of {runs})")
    print(f"ratio:                           {ours / bare:7.2f}")
    print(f"heavy SDKs imported at start:    {loaded or 'none'}")


if __name__ == "__main__":
    main()
