"""One cold start, run in a fresh process by ``benchmarks.run``: load a contender, score texts, report JSON.

``python -m benchmarks.probe KIND ARTIFACT_DIR TEXTS_JSON`` prints one line of JSON:

* ``started_at``: ``time.time()`` as this module began (the parent subtracts its own clock at spawn from it to get
  the interpreter's start-up, which no in-process timer sees);
* ``import_s``: importing the modules the contender's loader needs (numpy included; :data:`IMPORTS`);
* ``artifact_load_s``: then loading the saved contender (reading, verifying, building what scoring needs);
* ``load_s``: the two together, from before any library is imported to a loaded contender;
* ``first_post_s``: scoring the first post (lazy initialization such as jieba's dictionary lands here);
* ``cold_start_s``: ``load_s + first_post_s``, i.e. process ready to the first answer;
* ``cold_start_cpu_s``: the CPU time (user + system) of this process over the same span: less sensitive than the
  wall clock to other processes on a shared machine;
* ``batch_s``: then scoring every text in one batch;
* ``rss_after_load_mb`` / ``rss_after_first_mb`` / ``peak_rss_mb``: peak resident memory after loading / after the
  first post / at the end.

Peak memory is ``VmHWM`` of ``/proc/self/status`` where there is one: on Linux ``ru_maxrss`` carries over
the parent's resident size at fork through exec, so a probe started by a large benchmark process would
report the parent's size. ``ru_maxrss`` is the fallback elsewhere.
"""

import time

STARTED_AT = time.time()

import os  # noqa: E402

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

# The thread limits above must be set before anything imports numpy.
import importlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

# What each contender's loader imports before it reads its artifact, so import and load are timed apart
# (a kind not listed here has its imports counted in artifact_load_s).
IMPORTS: dict[str, tuple[str, ...]] = {
    "rules": ("numpy", "duanka.scoring.scorer"),
    "duanka_scorer": ("numpy", "duanka.scoring.scorer"),
    "duanka_scorer_json": ("numpy", "duanka.scoring.scorer"),
    "duanka_background": ("numpy", "duanka.scoring.scorer"),
    "duanka_stream": ("numpy", "duanka.scoring.scorer"),
}


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    """Run the probe; see the module docstring."""
    kind, directory, texts_path = argv if argv is not None else sys.argv[1:]
    started = time.perf_counter()
    started_cpu = time.process_time()
    for module in IMPORTS.get(kind, ("numpy",)):
        importlib.import_module(module)
    from benchmarks.contenders import load

    imported = time.perf_counter()
    predictor = load(kind, directory)
    loaded = time.perf_counter()
    loaded_cpu = time.process_time()
    rss_after_load = _rss_mb()
    with open(texts_path, encoding="utf-8") as handle:
        texts = json.load(handle)
    first = time.perf_counter()
    first_cpu = time.process_time()
    predictor.predict_proba(texts[:1])
    answered = time.perf_counter()
    answered_cpu = time.process_time() - (first_cpu - loaded_cpu)  # reading the texts is not the scorer's
    rss_after_first = _rss_mb()
    predictor.predict_proba(texts)
    finished = time.perf_counter()
    report = {
        "started_at": STARTED_AT,
        "import_s": imported - started,
        "artifact_load_s": loaded - imported,
        "load_s": loaded - started,
        "first_post_s": answered - first,
        "cold_start_s": (loaded - started) + (answered - first),
        "cold_start_cpu_s": answered_cpu - started_cpu,
        "batch_s": finished - answered,
        "rss_after_load_mb": rss_after_load,
        "rss_after_first_mb": rss_after_first,
        "peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
