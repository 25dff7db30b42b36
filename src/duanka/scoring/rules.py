"""The rule engine: rules are data (YAML), matched on normalized text, with spans mapped to the original.

A rules file has a ``version``, ``thresholds`` for rules-only decisions, named ``contexts`` (pattern lists
that rules refer to as ``@name``, e.g. anti-fraud wording) and ``rules``. Each rule: ``id``, ``label``,
``description``, ``patterns`` (literal terms, or regular expressions written ``re:...``), ``weight`` in
(0, 1], optional ``unless`` patterns that keep it from firing, optional ``escalate`` (lift a model decision
to at least ``review``) and ``examples`` (``match`` / ``no_match``) that ``duanka rules check`` runs.

User term lists (a blocklist and an allowlist, one term a line) change decisions without retraining.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from re import _constants as _sre  # the parse tree of a pattern, to find the literals every match contains
from re import _parser as _sre_parser
from typing import Any

import numpy as np
import re2

from duanka.errors import RulesError
from duanka.labels import LABELS, NORMAL, RISKY_LABELS
from duanka.text.lexicon import parse_yaml, yaml_file
from duanka.text.normalize import Normalized, normalize, normalize_lazily, normalize_with_offsets

__all__ = ["DEFAULT_RULES", "Rule", "RuleHit", "RuleSet", "TermHit", "TermLists", "required_literals"]

DEFAULT_RULES = "rules.yaml"
RULES_FORMAT_VERSION = 1
_RULE_KEYS = {"id", "label", "description", "patterns", "weight", "unless", "escalate", "examples"}
_TOP_KEYS = {"version", "name", "description", "thresholds", "contexts", "rules"}


@dataclass(frozen=True)
class Match:
    """A matched term: the normalized text that matched and its span in the original text."""

    term: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired on a post, with every place it matched."""

    rule_id: str
    label: str
    description: str
    weight: float
    escalate: bool
    matches: tuple[Match, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "label": self.label,
            "description": self.description,
            "weight": self.weight,
            "escalate": self.escalate,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class TermHit:
    """A user term-list entry found in a post."""

    list_name: str
    match: Match

    def to_dict(self) -> dict[str, Any]:
        return {"list": self.list_name, **self.match.to_dict()}


# Pattern safety (README "Rules and term lists"): Python's backtracking engine can take exponential time on a
# pattern such as (a+)+$ or (ab|a)+$, so such patterns are refused when a rules file is loaded.
# Patterns run on RE2 (google-re2): matching time is linear in the text by construction, whatever a user's rule
# says, so no pattern can hang the scorer; what RE2 cannot compile (look-around, back-references) is refused.


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error comes back as a RulesError; RE2's own log line says nothing more
    return options


_RE2_OPTIONS = _re2_options()


def compile_re2(expression: str) -> Any:
    """An RE2 pattern, or ``re2.error``."""
    return re2.compile(expression, _RE2_OPTIONS)


# ----------------------------------------------------------------------------- literal gate
# A rule's patterns run only when the text holds at least one of the rule's required literals: strings
# derived from the parsed patterns such that every possible match contains one of them. The derivation is
# conservative: where it cannot prove a requirement (case-insensitive flags, a pattern made only of classes
# or optional parts), the rule has no gate and always runs, so the hits are the same as without the gate.
_REPEATS = frozenset({_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT})
_LANGUAGE_LIMIT = 64  # largest finite set of strings tracked for one part of a pattern
_CLASS_LIMIT = 16  # a character class with at most this many literal members counts as a set of strings


def _exact(op: Any, av: Any) -> set[str] | None:
    """The finite set of strings one parsed item can match (None: unknown or too many)."""
    if op is _sre.LITERAL:
        return {chr(av)}
    if op is _sre.IN and len(av) <= _CLASS_LIMIT and all(kind is _sre.LITERAL for kind, _ in av):
        return {chr(value) for _, value in av}
    if op is _sre.SUBPATTERN and not av[1] & re.IGNORECASE:
        return _sequence(av[3])[0]
    if op is _sre.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            language = _sequence(branch)[0]
            if language is None:
                return None
            union |= language
        return union if len(union) <= _LANGUAGE_LIMIT else None
    return None


def _needs(op: Any, av: Any) -> set[str] | None:
    """Strings one of which every match of a (non-exact) parsed item contains (None: no requirement known)."""
    if op is _sre.SUBPATTERN and not av[1] & re.IGNORECASE:
        return _sequence(av[3])[1]
    if op is _sre.ATOMIC_GROUP:
        return _sequence(av)[1]
    if op in _REPEATS and av[0] >= 1:
        language, needed = _sequence(av[2])
        return language if language is not None and "" not in language else needed
    if op is _sre.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            needed = _sequence(branch)[1]
            if needed is None:
                return None
            union |= needed
        return union
    return None


def _better(candidate: set[str], best: set[str] | None) -> bool:
    """Longer shortest string first (rarer in text), then fewer strings."""
    if best is None:
        return True
    return (min(map(len, candidate)), -len(candidate)) > (min(map(len, best)), -len(best))


def _sequence(items: Any) -> tuple[set[str] | None, set[str] | None]:
    """(exact set of strings the sequence matches or None, strings one of which every match contains or None)."""
    best: set[str] | None = None
    run: set[str] | None = {""}  # strings the current run of exact items can match
    exact_all = True

    def close(current: set[str] | None) -> None:
        nonlocal best
        if current and "" not in current and _better(current, best):
            best = set(current)

    for op, av in items:
        if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue  # zero-width: the characters on either side are still adjacent in the match
        language = _exact(op, av)
        if language is not None and run is not None and len(run) * len(language) <= _LANGUAGE_LIMIT:
            run = {head + tail for head in run for tail in language}
            continue
        close(run)
        if language is not None:
            run = language
            exact_all = False
            continue
        exact_all = False
        run = {""}
        needed = _needs(op, av)
        if needed and "" not in needed and _better(needed, best):
            best = needed
    close(run)
    return (run if exact_all else None), best


def required_literals(pattern: Any) -> frozenset[str] | None:
    """Strings one of which every match of ``pattern`` (an RE2 pattern) contains, or None when none can be derived.

    Derived from Python's parse of the pattern text, conservatively (see the comment above ``_exact``).
    """
    try:
        tree = _sre_parser.parse(pattern.pattern)
    except re.error:
        return None
    return _literals_of(tree)


def _literals_of(tree: Any) -> frozenset[str] | None:
    """:func:`required_literals` of a pattern already parsed by Python."""
    if tree.state.flags & re.IGNORECASE:
        return None
    language, needed = _sequence(tree)
    if language is not None and "" not in language:
        needed = language
    if not needed or "" in needed:
        return None
    return _without_superstrings(needed)


def _without_superstrings(strings: set[str]) -> frozenset[str]:
    """The strings that contain no other string of the set (a string that contains another adds nothing to a
    gate); one Aho-Corasick pass per string, so a rule of 50,000 literals loads in linear time."""
    import ahocorasick

    finder = ahocorasick.Automaton()
    for s in strings:
        finder.add_word(s, s)
    finder.make_automaton()
    return frozenset(s for s in strings if all(found == s for _end, found in finder.iter(s)))


class _LiteralPrefilter:
    """Which rules can fire on a text: one Aho-Corasick pass finds every required literal present.

    A rule whose required literals are all absent cannot match, so its patterns are not run (same hits as
    running every rule: tests/test_scorer.py).
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.always = frozenset(i for i, rule in enumerate(rules) if rule.literals is None)
        universe = sorted({literal for rule in rules if rule.literals for literal in rule.literals})
        triggers = [
            frozenset(i for i, rule in enumerate(rules) if rule.literals and literal in rule.literals)
            for literal in universe
        ]
        self.finder: Any = None
        if universe:
            import ahocorasick

            self.finder = ahocorasick.Automaton()
            for literal, rule_indices in zip(universe, triggers):
                self.finder.add_word(literal, rule_indices)
            self.finder.make_automaton()

    def active(self, text: str) -> frozenset[int]:
        """Indices of the rules whose patterns may match ``text``."""
        if self.finder is None:
            return self.always
        active = set(self.always)
        for _end, rule_indices in self.finder.iter(text):
            active |= rule_indices
        return frozenset(active)


def _compile(patterns: list[str], where: str) -> tuple[Any, Any]:
    """One RE2 pattern for a rule's patterns (``re:`` expressions and literals), longest first, and Python's parse of
    it (which the literal prefilter reads; None when Python cannot parse the combination); (None, None) for none.

    RE2 compiles every expression alone (an expression such as ``a)|(b`` is only valid inside the combination) and
    then the combination; Python parses the combination only, and each expression alone only when that fails, so
    the error names the first bad pattern, in file order, exactly as checking each of them first would.
    """
    try:
        parts = _parts(patterns, where, check_expressions=False)
    except RulesError:
        _parts(patterns, where, check_expressions=True)  # a bad expression before the bad literal is named first
        raise
    if not parts:
        return None, None
    combined = "|".join(sorted(parts, key=len, reverse=True))
    try:
        pattern = compile_re2(combined)
    except re2.error as exc:  # e.g. (?i) at the start of one pattern, or one group name in two patterns
        _parts(patterns, where, check_expressions=True)
        raise RulesError(
            f"{where}: the patterns cannot be combined ({_message(exc)}); use scoped flags such as (?i:...) and "
            "give each named group a distinct name or use (?:...)"
        ) from None
    try:
        tree = _sre_parser.parse(combined)
    except re.error:
        _parts(patterns, where, check_expressions=True)
        tree = None  # each expression parses alone, not together: the rule gets no literal gate
    return pattern, tree


def _parts(patterns: list[str], where: str, *, check_expressions: bool) -> list[str]:
    """The regular-expression text of each pattern; RulesError for the first bad one (each expression is compiled by
    RE2, and parsed by Python too with ``check_expressions``)."""
    parts = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise RulesError(f"{where}: every pattern must be a non-empty string, got {pattern!r}")
        if pattern.startswith("re:"):
            expression = pattern[3:]
            try:
                compile_re2(expression)
                if check_expressions:
                    _sre_parser.parse(expression)  # the literal prefilter reads Python's parse of the pattern
            except (re2.error, re.error) as exc:
                raise RulesError(
                    f"{where}: regular expression {expression!r} cannot be compiled ({_message(exc)}); rules run on "
                    "RE2, which guarantees linear time and has no look-around or back-references: write the "
                    "exception as the rule's `unless` patterns"
                ) from None
            parts.append(f"(?:{expression})")
        else:
            if normalize(pattern) != pattern:
                raise RulesError(
                    f"{where}: literal {pattern!r} can never match normalized text; write it as {normalize(pattern)!r}"
                )
            parts.append(re.escape(pattern))
    return parts


def _message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def _matches(pattern: Any, normalized: Normalized, original: str) -> tuple[Match, ...]:
    found = []
    for m in pattern.finditer(normalized.text):
        if m.end() == m.start():
            continue
        start, end = normalized.to_original(m.start(), m.end())
        found.append(Match(m.group(), start, end, original[start:end]))
    return tuple(found)


@dataclass
class Rule:
    """One rule, compiled."""

    rule_id: str
    label: str
    description: str
    weight: float
    patterns: Any  # an RE2 pattern
    unless: Any = None
    escalate: bool = False
    examples_match: list[str] = field(default_factory=list)
    examples_no_match: list[str] = field(default_factory=list)
    literals: frozenset[str] | None = None  # one of these is in every text the patterns match (None: not known)

    def apply(self, normalized: Normalized, original: str) -> RuleHit | None:
        # The rule's own patterns gate everything else: most posts match none, so ``unless`` and the span
        # mapping run only for the few that do (the same hits as checking ``unless`` first).
        text = normalized.text
        if self.patterns.search(text) is None:
            return None
        if self.unless is not None and self.unless.search(text):
            return None
        matches = _matches(self.patterns, normalized, original)
        if not matches:
            return None
        return RuleHit(self.rule_id, self.label, self.description, self.weight, self.escalate, matches)


class RuleSet:
    """A loaded, validated rules file."""

    def __init__(self, data: dict[str, Any], source_text: str, path: str) -> None:
        self.path = path
        self.source_text = source_text
        self.digest = hashlib.sha256(source_text.encode("utf-8")).hexdigest()
        where = path
        if not isinstance(data, dict):
            raise RulesError(f"{where}: expected a mapping at the top level")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise RulesError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}")
        if data.get("version") != RULES_FORMAT_VERSION:
            raise RulesError(f"{where}: version must be {RULES_FORMAT_VERSION}, found {data.get('version')!r}")
        self.name = str(data.get("name", Path(path).stem))
        thresholds = data.get("thresholds") or {}
        try:
            self.thresholds = {"review": float(thresholds["review"]), "block": float(thresholds["block"])}
        except (KeyError, TypeError, ValueError):
            raise RulesError(f"{where}: thresholds must give numbers for review and block") from None
        if not 0 < self.thresholds["review"] <= self.thresholds["block"] <= 1:
            raise RulesError(f"{where}: thresholds need 0 < review <= block <= 1")
        contexts = data.get("contexts") or {}
        if not isinstance(contexts, dict):
            raise RulesError(f"{where}: contexts must map names to pattern lists")
        self.contexts = {name: list(patterns) for name, patterns in contexts.items()}
        raw_rules = data.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise RulesError(f"{where}: rules must be a non-empty list")
        self.rules: list[Rule] = []
        seen: set[str] = set()
        for position, raw in enumerate(raw_rules, start=1):
            rule = self._build_rule(raw, f"{where}: rule {position}")
            if rule.rule_id in seen:
                raise RulesError(f"{where}: rule id {rule.rule_id!r} is used twice")
            seen.add(rule.rule_id)
            self.rules.append(rule)
        self._prefilter = _LiteralPrefilter(self.rules)

    def _expand(self, patterns: Any, where: str) -> list[str]:
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list):
            raise RulesError(f"{where}: expected a list of patterns")
        expanded = []
        for pattern in patterns:
            if isinstance(pattern, str) and pattern.startswith("@"):
                if pattern[1:] not in self.contexts:
                    raise RulesError(f"{where}: unknown context {pattern!r}")
                expanded.extend(self.contexts[pattern[1:]])
            else:
                expanded.append(pattern)
        return expanded

    def _build_rule(self, raw: Any, where: str) -> Rule:
        if not isinstance(raw, dict):
            raise RulesError(f"{where}: expected a mapping")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("id", "label", "description", "patterns", "weight"):
            if key not in raw:
                raise RulesError(f"{where}: missing {key!r}")
        where = f"{self.path}: rule {raw['id']!r}"
        if raw["label"] not in RISKY_LABELS:
            raise RulesError(f"{where}: label must be one of {', '.join(RISKY_LABELS)}, found {raw['label']!r}")
        try:
            weight = float(raw["weight"])
        except (TypeError, ValueError):
            raise RulesError(f"{where}: weight must be a number") from None
        if not 0 < weight <= 1:
            raise RulesError(f"{where}: weight must be in (0, 1], found {weight}")
        patterns, tree = _compile(self._expand(raw["patterns"], where), where)
        if patterns is None:
            raise RulesError(f"{where}: no patterns")
        unless, _ = _compile(self._expand(raw.get("unless", []), where), f"{where} (unless)")
        examples = raw.get("examples") or {}
        if not isinstance(examples, dict) or set(examples) - {"match", "no_match"}:
            raise RulesError(f"{where}: examples must have only 'match' and 'no_match' lists")
        return Rule(
            rule_id=str(raw["id"]),
            label=raw["label"],
            description=str(raw["description"]),
            weight=weight,
            patterns=patterns,
            unless=unless,
            escalate=bool(raw.get("escalate", False)),
            examples_match=list(examples.get("match") or []),
            examples_no_match=list(examples.get("no_match") or []),
            literals=_literals_of(tree) if tree is not None else None,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        """Load a rules file; ``None`` loads the rules shipped with the package."""
        data, text, where = yaml_file(path, DEFAULT_RULES, RulesError, "rules file")
        return cls(data, text, where)

    @classmethod
    def from_text(cls, text: str, where: str) -> RuleSet:
        """A rules file's text (e.g. an artifact's snapshot); ``where`` names it in errors."""
        return cls(parse_yaml(text, where, RulesError), text, where)

    def match(self, normalized: Normalized, original: str) -> list[RuleHit]:
        """Every rule that fires on a post (rules none of whose required literals is present are skipped)."""
        active = self._prefilter.active(normalized.text)
        hits = []
        for index, rule in enumerate(self.rules):
            if index in active:
                hit = rule.apply(normalized, original)
                if hit is not None:
                    hits.append(hit)
        return hits

    def match_text(self, text: str) -> list[RuleHit]:
        """Normalize ``text`` and match it."""
        return self.match(normalize_lazily(text), text)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Rules-only probabilities in ``LABELS`` order, one row per text (the evaluation interface)."""
        rows = []
        for text in texts:
            probabilities, _ = rule_probabilities(self.match_text(text))
            rows.append([probabilities[label] for label in LABELS])
        return np.asarray(rows, dtype=float).reshape(len(rows), len(LABELS))

    def check(self) -> list[str]:
        """Run every rule's examples; return one line per example that does not behave as written."""
        failures = []
        for rule in self.rules:
            if not rule.examples_match:
                failures.append(f"{self.path}: rule {rule.rule_id!r} has no 'match' example")
            for example in rule.examples_match:
                if rule.apply(normalize_with_offsets(example), example) is None:
                    failures.append(f"{self.path}: rule {rule.rule_id!r} should match {example!r} but does not")
            for example in rule.examples_no_match:
                if rule.apply(normalize_with_offsets(example), example) is not None:
                    failures.append(f"{self.path}: rule {rule.rule_id!r} should not match {example!r} but does")
        return failures


def rule_probabilities(hits: list[RuleHit]) -> tuple[dict[str, float], float]:
    """Per-label probabilities and risk from rule hits (noisy-OR of the weights).

    Risk is the chance that at least one fired rule is right; it is shared among the risky labels in
    proportion to each label's own noisy-OR score, and ``normal`` gets the rest.
    """
    scores = {}
    for label in RISKY_LABELS:
        miss = 1.0
        for hit in hits:
            if hit.label == label:
                miss *= 1.0 - hit.weight
        scores[label] = 1.0 - miss
    miss_all = 1.0
    for hit in hits:
        miss_all *= 1.0 - hit.weight
    risk = 1.0 - miss_all
    total = sum(scores.values())
    probabilities = {label: (risk * scores[label] / total if total else 0.0) for label in RISKY_LABELS}
    probabilities[NORMAL] = 1.0 - risk
    return {label: round(probabilities[label], 6) for label in LABELS}, round(risk, 6)


class TermLists:
    """A blocklist and an allowlist of plain terms (one a line), normalized like the posts they meet."""

    def __init__(self, blocklist: list[str] | None = None, allowlist: list[str] | None = None) -> None:
        self.blocklist = sorted({normalize(t) for t in blocklist or [] if normalize(t)}, key=len, reverse=True)
        self.allowlist = sorted({normalize(t) for t in allowlist or [] if normalize(t)}, key=len, reverse=True)
        self._block = compile_re2("|".join(map(re.escape, self.blocklist))) if self.blocklist else None
        self._allow = compile_re2("|".join(map(re.escape, self.allowlist))) if self.allowlist else None

    @staticmethod
    def read(path: str | Path) -> list[str]:
        """Terms of a term-list file: one a line; blank lines and ``#`` comments ignored."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(f"{path}: cannot read term list ({exc})") from None
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    @classmethod
    def load(cls, blocklist: str | Path | None = None, allowlist: str | Path | None = None) -> TermLists:
        return cls(cls.read(blocklist) if blocklist else None, cls.read(allowlist) if allowlist else None)

    def __bool__(self) -> bool:
        return bool(self.blocklist or self.allowlist)

    def match(self, normalized: Normalized, original: str) -> list[TermHit]:
        hits = []
        for name, pattern in (("blocklist", self._block), ("allowlist", self._allow)):
            if pattern is not None:
                hits.extend(TermHit(name, m) for m in _matches(pattern, normalized, original))
        return hits
