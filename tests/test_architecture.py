"""The package's layers point one way: every import (module-level or local) goes to a lower layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import duanka

PACKAGE = Path(duanka.__file__).parent

# Lowest first. A module may import only from layers strictly below its own (errors and labels are below all).
LAYERS: list[set[str]] = [
    {"_version", "errors", "labels", "defaults"},
    {"lexicon", "tables"},
    {"normalize", "segment"},
    {"linear", "classifier"},
    {"augment", "features", "gate", "rules"},
    {"data"},
    {"config", "evaluate", "policy"},
    {"train"},
    {"artifact"},
    {"scorer"},
    {"workflow", "batch"},
    {"review"},
    {"serving"},
    {"tracking", "spark"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}
MLFLOW_MODULES = {"serving", "tracking"}


def _modules() -> dict[str, Path]:
    return {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(duanka modules imported, top-level third-party packages imported), local imports included."""
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "duanka" and len(parts) > 1:
                    inner.add(parts[1])
                elif parts[0] != "duanka":
                    outer.add(parts[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "duanka":
                if len(parts) > 1:
                    inner.add(parts[1])
                else:  # from duanka import lexicon, defaults
                    inner.update(alias.name for alias in node.names if alias.name in _modules())
                    if any(alias.name not in _modules() for alias in node.names):
                        inner.add("__init__")
            else:
                outer.add(parts[0])
    return inner, outer


def test_every_module_has_a_layer() -> None:
    assert set(_modules()) <= set(RANK), f"give these modules a layer: {sorted(set(_modules()) - set(RANK))}"


def test_imports_point_down_and_make_no_cycle() -> None:
    upward = []
    for name, path in sorted(_modules().items()):
        inner, _ = _imports(path)
        for target in sorted(inner):
            if target == "__init__" or RANK.get(target, 99) >= RANK[name]:
                upward.append(f"{name} (layer {RANK[name]}) imports {target} (layer {RANK.get(target, '?')})")
    assert not upward, "\n".join(upward)  # strictly downward edges cannot form a cycle


def test_only_the_adapters_import_mlflow() -> None:
    importers = {name for name, path in _modules().items() if "mlflow" in _imports(path)[1]}
    assert importers == MLFLOW_MODULES


def test_the_checker_sees_local_imports(tmp_path: Path) -> None:
    # The test above must catch an upward import hidden inside a function.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from duanka.tracking import champion\n    import mlflow\n", encoding="utf-8")
    assert _imports(sample) == ({"tracking"}, {"mlflow"})


def test_train_write_and_score_without_mlflow(tmp_path: Path, small_posts: Path, small_holdout: Path) -> None:
    # An artifact is trained, written and loaded with MLflow hidden, as on a machine without it.
    code = f"""
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("mlflow hidden by the test")
sys.meta_path.insert(0, Hide())
from duanka.config import TrainConfig
from duanka.workflow import train_artifact
from duanka import Scorer
run = train_artifact({str(small_posts)!r}, {str(small_holdout)!r}, {str(tmp_path / "model")!r},
                     TrainConfig(seed=7, c_grid=(3.0,), cv_folds=3))
scorer = Scorer.load({str(tmp_path / "model")!r}, strict=True)
result = scorer.score("收*咔 加薇，长期高价收，秒结")
assert not result.degraded and result.source.startswith("model"), result
assert "mlflow" not in sys.modules
print("ok", run.holdout.macro_f1)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
