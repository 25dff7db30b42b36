"""One cold start, run in a fresh process by ``benchmarks.run``: load a contender, score texts, report JSON.

``python -m benchmarks.probe KIND ARTIFACT_DIR TEXTS_JSON`` prints one line of JSON:

* ``load_s``: from before any library is imported to a loaded contender (imports included);
* ``first_post_s``: scoring the first post (lazy initialization such as jieba's dictionary lands here);
* ``cold_start_s``: the two together, i.e. process ready to the first answer;
* ``batch_s``: then scoring every text in one batch;
* ``rss_after_load_mb`` / ``peak_rss_mb``: peak resident memory after loading / at the end.

Peak memory is ``VmHWM`` of ``/proc/self/status`` where there is one: on Linux ``ru_maxrss`` carries over
the parent's resident size at fork through exec, so a probe started by a large benchmark process would
report the parent's size. ``ru_maxrss`` is the fallback elsewhere.
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

# The thread limits above must be set before anything imports numpy.
import json
import resource
import sys
import time


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
    from benchmarks.contenders import load

    predictor = load(kind, directory)
    loaded = time.perf_counter()
    rss_after_load = _rss_mb()
    with open(texts_path, encoding="utf-8") as handle:
        texts = json.load(handle)
    first = time.perf_counter()
    predictor.predict_proba(texts[:1])
    answered = time.perf_counter()
    predictor.predict_proba(texts)
    finished = time.perf_counter()
    report = {
        "load_s": loaded - started,
        "first_post_s": answered - first,
        "cold_start_s": (loaded - started) + (answered - first),
        "batch_s": finished - answered,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
