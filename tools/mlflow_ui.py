"""`make mlflow`: the MLflow UI over this project's tracking store and registry.

    python -m tools.mlflow_ui [--port 5000]

With the embedded default (sqlite under the data root) it starts ``mlflow ui`` on it; when
MLFLOW_TRACKING_URI names a server, that server already has a UI and its address is printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from include.config import mlflow_artifact_root, mlflow_tracking_uri


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    args = p.parse_args(argv)
    uri = mlflow_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow tracking server: {uri} (its UI is at that address)")
        return 0
    print(f"MLflow UI on http://{args.host}:{args.port} over {uri}", flush=True)
    cmd = ["mlflow", "ui", "--backend-store-uri", uri, "--default-artifact-root", mlflow_artifact_root().as_uri(),
           "--host", args.host, "--port", str(args.port)]
    os.execvp(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
