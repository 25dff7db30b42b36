"""``Scorer``: an artifact and rules turned into results; the one thing services import.

Decision policy (also in the README):

* With the model: ``label`` is the most probable label, ``risk`` = 1 − P(normal), and ``decision`` is
  ``block`` at or above the artifact's block threshold, ``review`` at or above its review threshold,
  else ``pass``. Rules that fire add evidence (``source`` becomes ``model+rules``), and a fired rule
  marked ``escalate`` lifts ``pass`` to ``review``. ``policy=`` picks another surface's thresholds from the
  artifact (``duanka.scoring.policy``); the result names the policy it was decided under.
* Without the model (missing, damaged, wrong format, or failing on one input): the rules answer alone,
  ``source`` is ``rules`` and ``degraded`` is true.
* Term lists, in both modes: a blocklist term makes the decision ``block``; an allowlist term (and no
  blocklist term) makes it ``pass``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duanka.defaults import ARTIFACT_DIR
from duanka.errors import ArtifactError, PolicyError, RulesError
from duanka.labels import LABELS, NORMAL, RISKY_LABELS
from duanka.scoring.artifact import KEY_ENV, read_artifact
from duanka.scoring.evidence_gate import gate_for
from duanka.scoring.model import Features, LinearModel
from duanka.scoring.policy import DEFAULT_POLICY, checked_thresholds, decide, manifest_policies
from duanka.scoring.result import LazyEvidence, ScoreResult
from duanka.scoring.rules import RuleHit, RuleSet, TermHit, TermLists, rule_probabilities
from duanka.text.chars import replace_surrogates
from duanka.text.normalize import Normalized, normalize_lazily

__all__ = ["MAX_CHARS", "MAX_INPUT_CHARS", "ScoreResult", "Scorer", "is_model_uri"]

logger = logging.getLogger("duanka")

# Limits (README "Limits"): at most MAX_INPUT_CHARS raw characters are read per text (bounds the work of
# cleaning and normalization); the model and rules see at most MAX_CHARS characters of *normalized* text, so
# padding that normalization removes (zero-width, spaces, NULs, U+3000, newlines) cannot push a post out of view.
MAX_CHARS = 10_000
MAX_INPUT_CHARS = 1_000_000
MAX_RUN = 8  # a normalized text over MAX_CHARS keeps at most this many of one repeated character in a row
TOP_FEATURES = 5
RULES_ONLY_VERSION = "rules-only"
_DECISION_RANK = {"pass": 0, "review": 1, "block": 2}


def is_model_uri(value: str | Path) -> bool:
    """True for an MLflow model URI (``models:/…``, ``runs:/…``, ``s3://…``), false for a directory path."""
    return isinstance(value, str) and (value.startswith(("models:/", "runs:/")) or "://" in value)


class Scorer:
    """Score posts with a trained pipeline and rules, or with rules alone when there is no usable model.

    Build one with :meth:`Scorer.load`; a Scorer is immutable after loading and may be shared by threads.
    """

    def __init__(
        self,
        model: LinearModel | None = None,
        manifest: dict[str, Any] | None = None,
        rules: RuleSet | None = None,
        terms: TermLists | None = None,
        degraded_cause: str | None = None,
    ) -> None:
        """Args:
        model: the exported model (:class:`duanka.scoring.model.LinearModel`), or a fitted scikit-learn pipeline
            (exported here; for evaluation right after training), or None for rules only.
        manifest: the artifact's manifest (``thresholds`` and ``model_version`` are read from it).
        rules, terms, degraded_cause: the rules, term lists and why the model is missing.
        """
        self.manifest = manifest or {}
        self.signed = False  # True when loaded from an artifact whose HMAC matched the configured key
        self.rules = rules if rules is not None else RuleSet.load()
        self.terms = terms or TermLists()
        self.degraded_cause = degraded_cause
        self._model: LinearModel | None = None
        if model is not None:
            if not isinstance(model, LinearModel):
                raise ArtifactError(
                    f"not an exported model ({type(model).__name__}); export a fitted pipeline with "
                    "duanka.training.features.export_pipeline"
                )
            self._model = model
            # How much a feature pushes toward a label rather than toward the average label, one contiguous row per
            # label (indexing a 1-D row is twice as fast as the 2-D array); built when evidence is first read, since
            # a cold start that never reads evidence need not pay for it (see _push_rows)
            self._push: tuple[np.ndarray, ...] | None = None
            # column -> (feature name, the n-gram as it appears in normalized text); filled as evidence is
            # read, at most one entry per vocabulary column (dict writes are atomic: safe across threads)
            self._feature_terms: dict[int, tuple[str, str]] = {}
            model.warm_up()
            self.thresholds = checked_thresholds(self.manifest.get("thresholds"), "manifest thresholds")
            self.policies = manifest_policies(self.manifest, self.thresholds)
        else:
            self.thresholds = dict(self.rules.thresholds)
            self.policies = {}  # the artifact's policies are unknown without it

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path_or_uri: str | Path = ARTIFACT_DIR,
        *,
        rules: str | Path | RuleSet | None = None,
        blocklist: str | Path | None = None,
        allowlist: str | Path | None = None,
        strict: bool = False,
        key: str | bytes | None = None,
    ) -> Scorer:
        """Load an artifact directory (for an MLflow URI such as ``models:/duanka@champion``, use
        :func:`duanka.adapters.serving.load_scorer`, which resolves the URI and then calls this).

        Args:
            path_or_uri: the artifact directory to load; nothing else is searched.
            rules: a rules file or RuleSet; default: the snapshot stored in the artifact, or the shipped
                rules when the artifact is unusable.
            blocklist, allowlist: term-list files (one term a line).
            strict: raise ArtifactError instead of falling back to rules when the model is unusable.
            key: HMAC key the artifact must be signed with (default ``$DUANKA_ARTIFACT_KEY``); with a key, an
                unsigned or wrongly signed artifact is refused (rules answer; ``strict`` raises).

        Returns:
            A Scorer; ``scorer.degraded`` is true (and one warning was logged) when it runs on rules alone.
        """
        terms = TermLists.load(blocklist, allowlist)
        rule_set = rules if isinstance(rules, RuleSet) else (RuleSet.load(rules) if rules is not None else None)
        if is_model_uri(path_or_uri):
            raise ValueError(
                f"{path_or_uri} is an MLflow URI: load it with duanka.adapters.serving.load_scorer({path_or_uri!r}) "
                "(Scorer.load reads artifact directories only, so scoring never imports MLflow)"
            )
        try:
            directory = Path(path_or_uri)
            artifact = read_artifact(directory, key=key)
            if rule_set is None:
                try:
                    rule_set = RuleSet.from_text(artifact.rules_text, str(directory / "rules.yaml"))
                except RulesError as exc:
                    raise ArtifactError(
                        f"rules snapshot unusable: {exc}; score with other rules (rules=..., `duanka score --rules "
                        "FILE`) or retrain"
                    ) from None
            scorer = cls(artifact.model, artifact.manifest, rule_set, terms)
            scorer.signed = artifact.signed
            if not artifact.signed:
                logger.info(  # info, not warning: unsigned is the default, and a warning on every load is noise
                    "duanka: %s is not signed: its files match its own manifest, which anyone who can write the "
                    "directory can rewrite; set %s where you train and where you serve to refuse foreign artifacts",
                    directory,
                    KEY_ENV,
                )
            return scorer
        except ArtifactError as exc:
            if strict:
                raise
            return cls._fallback(str(exc), rule_set, terms)

    @classmethod
    def rules_only(
        cls,
        cause: str,
        *,
        rules: str | Path | RuleSet | None = None,
        blocklist: str | Path | None = None,
        allowlist: str | Path | None = None,
    ) -> Scorer:
        """A degraded Scorer on rules alone, for when the model cannot be had; ``cause`` goes into every result."""
        rule_set = rules if isinstance(rules, RuleSet) else (RuleSet.load(rules) if rules is not None else None)
        return cls._fallback(cause, rule_set, TermLists.load(blocklist, allowlist))

    @classmethod
    def _fallback(cls, cause: str, rules: RuleSet | None, terms: TermLists) -> Scorer:
        logger.warning("duanka: model unavailable, scoring with rules only: %s", cause)
        return cls(None, None, rules, terms, degraded_cause=cause)

    # ------------------------------------------------------------------ properties
    @property
    def degraded(self) -> bool:
        """True when no model is loaded and the rules answer alone."""
        return self._model is None

    @property
    def model_version(self) -> str:
        return str(self.manifest.get("model_version", RULES_ONLY_VERSION)) if not self.degraded else RULES_ONLY_VERSION

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    # ------------------------------------------------------------------ scoring
    def score(self, text: str, data_id: Any = None, policy: str | None = None) -> ScoreResult:
        """Score one post; ``data_id`` comes back in the result; ``policy`` names the surface (default ``default``)."""
        return self.score_batch([text], [data_id], policy=policy)[0]

    def policy_thresholds(self, policy: str | None = None) -> dict[str, float]:
        """The review/block thresholds of ``policy`` (``None``: ``default``).

        Raises:
            PolicyError: the artifact knows no policy of that name (the message lists the known ones).
        """
        name = policy or DEFAULT_POLICY
        if self.degraded:
            return dict(self.rules.thresholds)
        if name not in self.policies:
            raise PolicyError(f"unknown policy {name!r}; this model knows: {', '.join(sorted(self.policies))}")
        return self.policies[name]

    def score_batch(
        self, texts: Sequence[str], data_ids: Sequence[Any] | None = None, policy: str | None = None
    ) -> list[ScoreResult]:
        """Score many posts in one vectorized pass; one result per text, in order.

        Args:
            policy: the surface whose thresholds decide (default ``default``); see :meth:`policy_thresholds`.

        Raises:
            TypeError: a text is not a string (``None`` included).
            PolicyError: an unknown policy.
        """
        thresholds = self.policy_thresholds(policy)
        if isinstance(texts, str):
            raise TypeError("score_batch takes a sequence of texts; use score() for one text")
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text at position {position} must be str, not {type(text).__name__}")
        if data_ids is None:
            data_ids = [None] * len(texts)
        elif len(data_ids) != len(texts):
            raise ValueError(f"{len(data_ids)} data_ids for {len(texts)} texts")

        prepared = [self._prepare(text) for text in texts]
        model_out = self._model_scores([p[1] for p in prepared])
        results = []
        for (text, normalized, truncated, notes), data_id, model in zip(prepared, data_ids, model_out):
            result = self._combine(text, normalized, truncated, list(notes), data_id, model, thresholds)
            result.policy = policy or DEFAULT_POLICY
            if self.degraded and result.policy != DEFAULT_POLICY:
                result.notes.append(f"policy {result.policy}: its thresholds need the model; the rules' decided")
            results.append(result)
        return results

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities in ``LABELS`` order, one row per text (the evaluation interface)."""
        results = self.score_batch(texts)
        return np.array([[r.probabilities[label] for label in LABELS] for r in results]).reshape(-1, len(LABELS))

    def _prepare(self, text: str) -> tuple[str, Normalized, bool, list[str]]:
        """Bound, clean and normalize one text: (text the spans point into, normalized, truncated, notes)."""
        notes = []
        truncated = len(text) > MAX_INPUT_CHARS
        if truncated:
            text = text[:MAX_INPUT_CHARS]
            notes.append(f"text longer than {MAX_INPUT_CHARS} characters: only the first {MAX_INPUT_CHARS} were read")
        text, replaced = replace_surrogates(text)  # same length: spans unchanged
        if replaced:
            notes.append("input: invalid_utf8")
        if "\x00" in text:
            notes.append("input: nul_removed")  # normalization drops NULs and keeps the offsets of the rest
        normalized = normalize_lazily(text)
        if len(normalized.text) > MAX_CHARS:
            normalized, note = _within_window(normalized)
            truncated = True
            notes.append(f"normalized text longer than {MAX_CHARS} characters: {note}")
        return text, normalized, truncated, notes

    def _model_scores(self, normalized: list[Normalized]) -> list[tuple[list[float], Any] | None]:
        """(probabilities in LABELS order, top features) per post, or None where the model cannot answer.

        The whole batch is vectorized and scored at once in numpy; the top features (evidence) are left
        as a lazy value that the result computes when its evidence is first read.
        """
        if self._model is None:
            return [None] * len(normalized)
        nonempty = [i for i, n in enumerate(normalized) if n.text.strip()]
        out: list[tuple[list[float], Any] | None] = [None] * len(normalized)
        if not nonempty:
            return out
        try:
            matrix = self._model.transform([normalized[i].text for i in nonempty])
            proba = self._model.proba(matrix)
        except Exception as exc:  # a batch that breaks the model: retry one by one, rules for the rest
            logger.warning("duanka: model failed on a batch (%s); scoring its posts one by one", exc)
            for i in nonempty:
                out[i] = self._model_one(normalized[i])
            return out
        labels = proba.argmax(axis=1).tolist()
        rows = proba.tolist()  # Python floats, exactly float() of each element, converted in one call
        for row, i in enumerate(nonempty):
            out[i] = (rows[row], self._lazy_top(matrix, row, labels[row], normalized[i]))
        return out

    def _model_one(self, normalized: Normalized) -> tuple[list[float], Any] | None:
        assert self._model is not None
        try:
            matrix = self._model.transform([normalized.text])
            proba = self._model.proba(matrix)[0]
        except Exception as exc:
            logger.warning("duanka: model failed on one post (%s); rules answer for it", exc)
            return None
        return proba.tolist(), self._lazy_top(matrix, 0, int(np.argmax(proba)), normalized)

    def _lazy_top(self, matrix: Features, row: int, label_index: int, normalized: Normalized) -> LazyEvidence:
        begin, end = matrix.indptr[row], matrix.indptr[row + 1]
        return LazyEvidence(
            self._top_features, matrix.indices[begin:end], matrix.data[begin:end], label_index, normalized
        )

    def _push_rows(self) -> tuple[np.ndarray, ...]:
        """The model's push per label (built on first use; two threads racing build equal rows, either is kept)."""
        rows = self._push
        if rows is None:
            assert self._model is not None
            rows = self._push = tuple(np.ascontiguousarray(row) for row in self._model.push())
        return rows

    def _top_features(
        self, columns: np.ndarray, values: np.ndarray, label_index: int, normalized: Normalized
    ) -> list[dict[str, Any]]:
        """The n-grams that pushed this post most toward its label, with their spans in the original text."""
        if len(columns) == 0:
            return []
        assert self._model is not None
        push = values * self._push_rows()[label_index][columns]
        order = np.argsort(-push)[:TOP_FEATURES]
        features = []
        known = self._feature_terms
        text = normalized.text
        # Python numbers from here on: five numpy scalar reads per post cost more than the arithmetic
        for weight, column in zip(push[order].tolist(), columns[order].tolist()):
            if weight <= 0:
                break
            named = known.get(column)
            if named is None:
                name = self._model.feature_name(column)
                named = known[column] = (name, name.split(":", 1)[1].replace(" ", ""))
            name, term = named
            at = text.find(term) if term else -1
            if at >= 0:
                start, stop = normalized.to_original(at, at + len(term))
                features.append({"feature": name, "weight": round(weight, 4), "start": start, "end": stop})
            else:
                features.append({"feature": name, "weight": round(weight, 4)})
        return features

    def _combine(
        self,
        text: str,
        normalized: Normalized,
        truncated: bool,
        notes: list[str],
        data_id: Any,
        model: tuple[list[float], Any] | None,
        thresholds: dict[str, float],
    ) -> ScoreResult:
        """One post's result from its rule hits, term hits and model output, in the decision order below."""
        hits: list[RuleHit] = self.rules.match(normalized, text)
        term_hits: list[TermHit] = self.terms.match(normalized, text) if self.terms else []
        evidence: dict[str, list[dict[str, Any]]] = {
            "rules": [h.to_dict() for h in hits],
            "terms": [t.to_dict() for t in term_hits],
            "model": [],
        }
        empty = not normalized.text.strip()
        if empty:
            notes.append("empty text")
            probabilities = {label: (1.0 if label == NORMAL else 0.0) for label in LABELS}
            risk, decision, source = 0.0, "pass", ("rules" if self.degraded else "model")
        elif model is not None:
            proba, evidence["model"] = model
            probabilities = {label: round(p, 6) for label, p in zip(LABELS, proba)}
            risk = round(1.0 - probabilities[NORMAL], 6)
            decision = _model_decision(risk, thresholds, normalized.text, hits, notes)
            source = "model+rules" if hits else "model"
        else:
            probabilities, risk = rule_probabilities(hits)
            decision, source = decide(risk, self.rules.thresholds), "rules"
            if not self.degraded:
                notes.append("model failed on this post; rules answered")
        label = max(LABELS, key=lambda name: probabilities[name])
        label, decision = _apply_term_lists(label, decision, probabilities, term_hits, notes)
        if self.degraded and self.degraded_cause:
            notes.append(f"model unavailable: {self.degraded_cause}")
        return ScoreResult(
            label=label,
            probabilities=probabilities,
            risk=float(risk),
            decision=decision,
            source=source,
            evidence=evidence,
            model_version=self.model_version,
            degraded=self.degraded or (model is None and not empty),
            data_id=data_id,
            truncated=truncated,
            notes=notes,
        )


# The decision order, in full: (1) the model's risk against the policy's thresholds (the rules' own thresholds
# when the model cannot answer); (2) the evidence gate may only lower it; (3) an ``escalate`` rule lifts ``pass``
# to ``review``; (4) a blocklist term makes it ``block``, else an allowlist term makes it ``pass``.
def _model_decision(risk: float, thresholds: dict[str, float], text: str, hits: list[RuleHit], notes: list[str]) -> str:
    """Steps 1-3 for a post the model scored; the gate's and the rules' reasons go into ``notes``."""
    decision = decide(risk, thresholds)
    if decision != "pass":
        gate = gate_for(text)
        if _DECISION_RANK[decision] > _DECISION_RANK[gate.ceiling]:
            notes.append(f"gate: {gate.reason} (model decision was {decision})")
            decision = gate.ceiling
    if decision == "pass" and any(h.escalate for h in hits):
        decision = "review"
        notes.append("escalated to review by rule " + ", ".join(h.rule_id for h in hits if h.escalate))
    return decision


def _apply_term_lists(
    label: str, decision: str, probabilities: dict[str, float], term_hits: list[TermHit], notes: list[str]
) -> tuple[str, str]:
    """Step 4: the caller's term lists override everything before them; returns (label, decision)."""
    blocked = [t for t in term_hits if t.list_name == "blocklist"]
    if blocked:
        if label == NORMAL:
            label = max(RISKY_LABELS, key=lambda name: probabilities[name])
        notes.append("blocklist term: " + ", ".join(sorted({t.match.term for t in blocked})))
        return label, "block"
    allowed = [t for t in term_hits if t.list_name == "allowlist"]
    if allowed:
        notes.append("allowlist term: " + ", ".join(sorted({t.match.term for t in allowed})))
        return label, "pass"
    return label, decision


def _within_window(normalized: Normalized) -> tuple[Normalized, str]:
    """Bring an over-long normalized text within ``MAX_CHARS``, dropping padding before anything is cut: runs of
    one repeated character are shortened, then decoration symbols (emoji, hearts, sparkles, skin tones, regional
    indicators: categories So and Sk; normalization has already dropped what renders as nothing, such as
    presentation selectors, ZWJ, tags, keycap marks and private-use characters) are dropped; only then is the
    text cut. So padding an ad with emoji cannot push it out of the window the model and rules see."""
    normalized = _shorten_runs(normalized)
    if len(normalized.text) <= MAX_CHARS:
        return normalized, f"runs of one repeated character shortened to {MAX_RUN}"
    normalized = _keep(normalized, [unicodedata.category(ch) not in ("So", "Sk") for ch in normalized.text])
    if len(normalized.text) <= MAX_CHARS:
        return normalized, "repeated characters shortened and decoration symbols (emoji) dropped"
    cut = Normalized(normalized.text[:MAX_CHARS], normalized.starts[:MAX_CHARS], normalized.ends[:MAX_CHARS])
    return cut, f"padding dropped, then scored on the first {MAX_CHARS}"


def _keep(normalized: Normalized, keep: list[bool]) -> Normalized:
    """The characters of ``normalized`` where ``keep`` is true, with their original spans."""
    return Normalized(
        "".join(c for c, k in zip(normalized.text, keep) if k),
        tuple(s for s, k in zip(normalized.starts, keep) if k),
        tuple(e for e, k in zip(normalized.ends, keep) if k),
    )


_RUNS = re.compile(r"(.)\1{" + str(MAX_RUN) + ",}", re.DOTALL)


def _shorten_runs(normalized: Normalized) -> Normalized:
    """Keep at most MAX_RUN characters of every run of one repeated character, with their original spans."""
    keep = [True] * len(normalized.text)
    for run in _RUNS.finditer(normalized.text):
        keep[run.start() + MAX_RUN : run.end()] = [False] * (run.end() - run.start() - MAX_RUN)
    return _keep(normalized, keep)
