"""The package's folders are its architecture: imports point one way, and the scoring core installs and imports light.

Folders, lowest first: the foundation modules at the package root (errors, labels, defaults), ``text``, ``files``,
``scoring``, ``training``, ``adapters``, then ``cli``. A module imports only from lower layers (local imports
included), so no folder reaches into one above it and no cycle can form. ``scoring`` is what a service installs:
it imports nothing from ``training`` or ``adapters``, and no third-party package outside the core install.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import duanka

PACKAGE = Path(duanka.__file__).parent
ROOT = PACKAGE.parents[1]

# Lowest first; each set is one layer. A module may import only from layers strictly below its own.
# The folder of every layer is its first dotted part (root modules have none); folders never interleave.
LAYERS: list[set[str]] = [
    {"_version", "errors", "labels", "defaults", "intervals"},
    {"text.chars", "text.lexicon"},
    {"text.normalize", "text.segment"},
    {"files.readers", "files.spreadsheet"},
    {"scoring.model", "scoring.policy", "scoring.limits"},
    {"scoring.rules", "scoring.evidence_gate", "scoring.result"},
    {"scoring.artifact"},
    {"scoring.scorer"},
    {"monitoring.stats"},
    {"monitoring.compare", "monitoring.reference"},
    {"training.classifier", "training.augment"},
    {"training.features", "training.dataset", "training.thresholds"},
    {"training.config", "training.evaluate"},
    {"training.fit", "training.export", "training.model_card"},
    {"training.stream"},
    {"training.workflow"},
    {"adapters.file_scoring"},
    {"adapters.review.schema", "adapters.review.estimates"},
    {"adapters.review.labelstudio"},
    {"adapters.review.queue"},
    {"adapters.review.feedback"},
    {"adapters.serving"},
    {"adapters.tracking", "adapters.spark", "adapters.http_app"},
    {"adapters.review.backend"},
    {"adapters.monitor", "adapters.monitor_html"},
    {"adapters.spark_monitor", "adapters.spark_train"},
    {"cli"},
    {"__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}
FOLDERS = ["", "text", "files", "scoring", "monitoring", "training", "adapters", "cli"]
MLFLOW_MODULES = {"adapters.serving", "adapters.tracking"}
# What the core install (`pip install duanka`) provides, by import name; the scoring core may import only these.
CORE_IMPORTS = {"numpy", "rjieba", "ahocorasick", "yaml", "re2"}
CORE_DISTRIBUTIONS = {"numpy", "rjieba", "pyahocorasick", "pyyaml", "google-re2"}
HEAVY = ("sklearn", "scipy", "pandas", "mlflow", "matplotlib", "pyspark", "joblib", "jieba", "pyarrow")


def _folder(name: str) -> str:
    return name.split(".")[0] if "." in name else ("cli" if name in ("cli", "__main__") else "")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name relative to ``duanka`` (package ``__init__`` files excluded)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" or "resources" in path.parts:
            continue
        found[".".join(path.relative_to(PACKAGE).with_suffix("").parts)] = path
    return found


def _subpackages() -> set[str]:
    return {".".join(p.parent.relative_to(PACKAGE).parts) for p in PACKAGE.rglob("__init__.py")} - {""}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(duanka modules imported, top-level third-party packages imported), local imports included."""
    modules, subpackages = _modules(), _subpackages()
    inner, outer = set(), set()

    def add(dotted: str) -> None:
        if dotted in modules:
            inner.add(dotted)
        elif dotted in subpackages or dotted == "":
            inner.add(f"{dotted}.__init__" if dotted else "__init__")

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "duanka":
                    add(".".join(parts[1:]))
                else:
                    outer.add(parts[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "duanka":
                outer.add(parts[0])
                continue
            base = ".".join(parts[1:])
            for alias in node.names:  # `from duanka.text import lexicon` imports a module; else the package
                dotted = f"{base}.{alias.name}" if base else alias.name
                add(dotted if dotted in modules else base)
    return inner, outer


def test_every_module_has_a_layer_and_layers_follow_the_folders() -> None:
    assert set(_modules()) <= set(RANK), f"give these modules a layer: {sorted(set(_modules()) - set(RANK))}"
    folder_ranks = [FOLDERS.index(_folder(next(iter(layer)))) for layer in LAYERS]
    assert folder_ranks == sorted(folder_ranks), "a layer list that interleaves folders"
    for layer in LAYERS:
        assert len({_folder(name) for name in layer}) == 1, f"one layer spans folders: {sorted(layer)}"


def test_imports_point_down_and_make_no_cycle() -> None:
    upward = []
    for name, path in sorted(_modules().items()):
        inner, _ = _imports(path)
        for target in sorted(inner):
            if target.endswith("__init__") or RANK.get(target, 99) >= RANK[name]:
                upward.append(f"{name} (layer {RANK[name]}) imports {target} (layer {RANK.get(target, '?')})")
    assert not upward, "\n".join(upward)  # strictly downward edges cannot form a cycle


def test_subpackage_inits_import_nothing_but_the_public_api() -> None:
    # duanka/__init__.py re-exports the scoring API; every other __init__ is a docstring (no hidden edges).
    for path in PACKAGE.rglob("__init__.py"):
        if "resources" in path.parts:
            continue
        inner, outer = _imports(path)
        if path.parent == PACKAGE:
            assert {_folder(m) for m in inner} <= {"", "text", "scoring"} and not outer, (path, inner, outer)
        else:
            assert not inner and not outer, f"{path}: keep package __init__ files free of imports"


def test_only_the_adapters_import_mlflow() -> None:
    importers = {name for name, path in _modules().items() if "mlflow" in _imports(path)[1]}
    assert importers == MLFLOW_MODULES


def test_the_scoring_core_imports_only_the_core_install() -> None:
    stdlib = set(sys.stdlib_module_names)
    for name, path in _modules().items():
        if _folder(name) in ("", "text", "scoring", "monitoring"):  # monitoring: the window statistics Spark runs
            inner, outer = _imports(path)
            assert {_folder(m) for m in inner} <= {"", "text", "scoring", "monitoring"}, f"{name} imports {inner}"
            third_party = outer - stdlib - {"duanka"}
            if name != "text.segment":  # imports jieba only when rjieba is absent or HMM is asked for
                assert third_party <= CORE_IMPORTS, f"{name} imports {third_party - CORE_IMPORTS}"


def test_the_core_install_is_what_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {spec.split(">")[0].split("=")[0].split("[")[0].strip().lower() for spec in project["dependencies"]}
    assert core == CORE_DISTRIBUTIONS


def test_the_checker_sees_local_imports(tmp_path: Path) -> None:
    # The test above must catch an upward import hidden inside a function.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from duanka.adapters.tracking import champion\n    import mlflow\n", "utf-8")
    assert _imports(sample) == ({"adapters.tracking"}, {"mlflow"})


_BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError(name + " is blocked by the test")
sys.meta_path.insert(0, Block())
"""


def test_scoring_core_loads_and_scores_with_the_heavy_libraries_blocked(small_artifact: Path) -> None:
    # A service's process: every scoring module imported, an artifact loaded and scored, with the training and
    # adapter libraries unimportable, as on a machine with the core install only.
    code = (
        _BLOCKER.format(heavy=set(HEAVY))
        + f"""
import importlib, pkgutil
import duanka.scoring, duanka.text
for package in (duanka.scoring, duanka.text):
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{{package.__name__}}.{{info.name}}")
from duanka import Scorer
scorer = Scorer.load({str(small_artifact)!r}, strict=True)
result = scorer.score("收*咔 加薇，长期高价收，秒结")
assert not result.degraded and result.source.startswith("model"), result
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {set(HEAVY)!r})
assert not loaded, loaded
print("ok", result.label)
"""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")


def test_train_write_and_score_without_mlflow(tmp_path: Path, small_posts: Path, small_holdout: Path) -> None:
    # An artifact is trained, written and loaded with MLflow hidden, as on a machine without it.
    code = (
        _BLOCKER.format(heavy={"mlflow"})
        + f"""
from duanka.training.config import TrainConfig
from duanka.training.workflow import train_artifact
from duanka import Scorer
run = train_artifact({str(small_posts)!r}, {str(small_holdout)!r}, {str(tmp_path / "model")!r},
                     TrainConfig(seed=7, c_grid=(3.0,), cv_folds=3))
scorer = Scorer.load({str(tmp_path / "model")!r}, strict=True)
result = scorer.score("收*咔 加薇，长期高价收，秒结")
assert not result.degraded and result.source.startswith("model"), result
assert "mlflow" not in sys.modules
print("ok", run.holdout.macro_f1)
"""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")


def test_no_function_is_longer_than_sixty_lines() -> None:
    # A function that does not fit on a screen does several jobs; the CLI's argument parser is a table, exempt.
    too_long = []
    for name, path in sorted(_modules().items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60 and (name, node.name) != ("cli", "build_parser"):
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)
