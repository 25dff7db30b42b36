"""Fill a local wheel directory with everything the served model's environment installs, for offline builds.

The logged pyfunc's ``requirements.txt`` is :func:`duanka.adapters.tracking._requirements` (duanka's core
dependencies, MLflow and pandas, pinned to this environment's versions; duanka itself ships inside the model as
code), and its ``python_env.yaml`` adds pip, setuptools and wheel. This downloads their wheels, dependencies
included, with pip's ordinary client, so that ``pip install --no-index --find-links <dir>`` can build the model's
environment without a network (``tests/test_serving.py`` does, then serves the model from it).

    python scripts/model_wheelhouse.py                 # into $DUANKA_WHEELHOUSE or ~/.cache/duanka/wheelhouse
    python scripts/model_wheelhouse.py --dir wheels/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path


def default_wheelhouse() -> Path:
    """``$DUANKA_WHEELHOUSE``, else ``~/.cache/duanka/wheelhouse``."""
    return Path(os.environ.get("DUANKA_WHEELHOUSE") or Path.home() / ".cache" / "duanka" / "wheelhouse")


def model_requirements() -> list[str]:
    """What the model's environment installs: its build dependencies, then its requirements."""
    from duanka.adapters.tracking import _requirements

    build = [f"pip=={version('pip')}", f"setuptools=={version('setuptools')}", "wheel"]
    return build + _requirements()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=default_wheelhouse(), help="wheel directory (created if missing)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    wanted = model_requirements()
    print(f"downloading {len(wanted)} requirements and their dependencies into {args.dir}:", " ".join(wanted))
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(args.dir), *wanted]
    done = subprocess.run(command, check=False)
    if done.returncode:
        print(f"pip download failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    print(f"{len(list(args.dir.glob('*.whl')))} wheels in {args.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
