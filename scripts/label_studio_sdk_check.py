"""Label Studio's own checks on duanka's files, run with an interpreter that has ``label-studio-sdk`` (2.x).

The SDK is not in duanka's ``dev`` extra: label-studio-sdk 2.1 pins opencv-python-headless<4.13, which requires
numpy<2.3, and would downgrade the numpy every other test runs on. Run it from its own environment::

    python -m venv /tmp/ls && /tmp/ls/bin/pip install "label-studio-sdk>=2.1,<3"
    /tmp/ls/bin/python scripts/label_studio_sdk_check.py validate queue.json queue.label_config.xml
    /tmp/ls/bin/python scripts/label_studio_sdk_check.py convert export.json label_config.xml OUTDIR

``validate``: the label config passes ``LabelInterface.validate()``; every task has the data each object of the
config shows; every prediction (and annotation) passes ``LabelInterface.validate_prediction``. Prints a JSON
summary; exit status 1 when anything fails. ``convert``: writes Label Studio's JSON_MIN (``OUTDIR/export_min.json``)
and CSV (``OUTDIR/export.csv``) exports of a JSON export with the SDK's own converter, the code Label Studio
exports with. ``tests/test_labelstudio.py`` runs both when ``$DUANKA_LABEL_STUDIO_PYTHON`` names such an
interpreter (or when the SDK imports in the test's own).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path


def validate(tasks_path: str, config_path: str) -> int:
    from label_studio_sdk.label_interface import LabelInterface

    interface = LabelInterface(Path(config_path).read_text(encoding="utf-8"))
    interface.validate()  # raises on a config Label Studio refuses
    problems, predictions, annotations = [], 0, 0
    tasks = json.loads(Path(tasks_path).read_text(encoding="utf-8"))
    for number, task in enumerate(tasks, 1):
        for obj in interface.objects:
            if obj.value_is_variable and task["data"].get(obj.value_name) is None:
                problems.append(f"task {number}: no data.{obj.value_name} for <{obj.tag} name={obj.name!r}>")
        for kind in ("prediction", "annotation"):
            for item in task.get(f"{kind}s") or []:
                errors = interface.validate_prediction(item, return_errors=True)
                problems += [f"task {number}: {kind}: {error}" for error in errors]
                predictions += kind == "prediction"
                annotations += kind == "annotation"
    summary = {
        "controls": [[c.name, c.tag, list(c.to_name)] for c in interface.controls],
        "objects": [[o.name, o.tag, o.value_name] for o in interface.objects],
        "tasks": len(tasks),
        "predictions": predictions,
        "annotations": annotations,
        "problems": problems,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if problems else 0


def convert(export_path: str, config_path: str, output: str) -> int:
    from label_studio_sdk.converter import Converter

    converter = Converter(config=Path(config_path).read_text(encoding="utf-8"), project_dir=None)
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        converter.convert_to_json_min(export_path, scratch, is_dir=False)
        shutil.copy(Path(scratch) / "result.json", target / "export_min.json")
        converter.convert_to_csv(export_path, str(target / "export.csv"), is_dir=False, sep=",")
    print(json.dumps({"written": [str(target / "export_min.json"), str(target / "export.csv")]}))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "validate":
        return validate(argv[1], argv[2])
    if len(argv) == 4 and argv[0] == "convert":
        return convert(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
