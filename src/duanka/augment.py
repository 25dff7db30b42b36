"""Deterministic evasion rewrites: augment training rows, build obfuscated test copies, spot tricks in text.

A rewrite applies two or three tricks that real evaders use to the domain terms of a post
(``resources/domain_terms.txt``), at least one of which survives normalization, so the variant teaches
the model something its source does not. The same seed always gives the same rewrites.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from duanka.labels import RISKY_LABELS
from duanka.normalize import normalize

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TRICKS", "augment_frame", "detect_evasion", "domain_terms", "obfuscate", "obfuscated_copy"]

# Tricks that normalization undoes (the model sees the plain form) and tricks that survive it.
UNDONE_TRICKS = ("separator", "near_form", "traditional", "fullwidth", "emoji_between", "zero_width")
SURVIVING_TRICKS = ("pinyin_initials", "pinyin_syllable", "chinese_numerals", "emoji_decoration")
TRICKS = UNDONE_TRICKS + SURVIVING_TRICKS

_SEPARATORS = ("*", " ", ".", "/", "丨", "-", "~", "·", "_", "|")
_EMOJI = ("📱", "💳", "🔥", "💰", "✅", "👉", "❤", "⭐", "🏦", "✨", "💯")
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_NEAR_FORMS = {
    "微信": ("薇信", "V信", "vx", "威信", "VX", "wx", "微❤信"),
    "qq": ("扣扣", "抠抠", "企鹅"),
    "卡": ("咔", "鉲"),
    "兼职": ("兼zhi", "兼值", "jianzhi"),
    "日结": ("日jie", "rijie"),
    "跑分": ("跑fen", "pao分"),
    "银行卡": ("yhk", "银行咔"),
    "支付宝": ("zfb", "支付包"),
    "四件套": ("肆件套",),
    "接码": ("接🐴", "接ma"),
}
_PINYIN_INITIALS = {
    "收卡": "sk",
    "出卡": "ck",
    "接码": "jm",
    "兼职": "jz",
    "日结": "rj",
    "跑分": "pf",
    "身份证": "sfz",
    "实名": "sm",
    "手机卡": "sjk",
    "对公户": "dgh",
    "银行卡": "yhk",
    "微信": "wx",
    "刷流水": "sls",
    "走账": "zz",
    "四件套": "4jt",
    "电话卡": "dhk",
    "流量卡": "llk",
    "高价": "gj",
}
_PINYIN = {
    "收": "shou",
    "卡": "ka",
    "码": "ma",
    "兼": "jian",
    "职": "zhi",
    "结": "jie",
    "租": "zu",
    "借": "jie",
    "号": "hao",
    "账": "zhang",
    "款": "kuan",
    "银": "yin",
    "行": "hang",
    "信": "xin",
    "微": "wei",
    "实": "shi",
    "名": "ming",
    "跑": "pao",
    "分": "fen",
    "刷": "shua",
    "套": "tao",
    "户": "hu",
    "证": "zheng",
    "日": "ri",
    "薪": "xin",
    "钱": "qian",
    "元": "yuan",
    "价": "jia",
    "卖": "mai",
    "买": "mai",
    "出": "chu",
}
_DIGITS = "零一二三四五六七八九"
_FINANCIAL = str.maketrans("一二三四五六七八九百千", "壹贰叁肆伍陆柒捌玖佰仟")
_FULLWIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


@lru_cache(maxsize=1)
def domain_terms() -> tuple[str, ...]:
    """The domain term list, longest first."""
    text = resources.files("duanka.resources").joinpath("domain_terms.txt").read_text(encoding="utf-8")
    terms = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return tuple(sorted(set(terms), key=len, reverse=True))


@lru_cache(maxsize=1)
def _s2t() -> dict[str, str]:
    text = resources.files("duanka.resources").joinpath("s2t.tsv").read_text(encoding="utf-8")
    return dict(line.split("\t")[:2] for line in text.splitlines() if line and not line.startswith("#"))


def _chinese_number(value: int) -> str:
    if value < 10:
        return _DIGITS[value]
    if value >= 100000:
        return "".join(_DIGITS[int(d)] for d in str(value))
    units = ["", "十", "百", "千", "万"]
    digits = str(value)
    out = []
    zero = False
    for position, digit in enumerate(digits):
        unit = units[len(digits) - position - 1]
        if digit == "0":
            zero = True
            continue
        if zero and out:
            out.append("零")
        zero = False
        out.append(_DIGITS[int(digit)] + unit)
    text = "".join(out)
    return text[1:] if text.startswith("一十") else text


def _term_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    lowered = text.lower()
    for term in domain_terms():
        for match in re.finditer(re.escape(term), lowered):
            begin, end = match.span()
            if all(end <= s or begin >= e for s, e in spans):
                spans.append((begin, end))
    return sorted(spans)


def _rewrite_term(term: str, trick: str, rng: random.Random) -> str:
    if trick == "separator":
        sep = rng.choice(_SEPARATORS)
        return sep.join(term)
    if trick == "emoji_between":
        return rng.choice(_EMOJI).join(term) if len(term) > 1 else term + rng.choice(_EMOJI)
    if trick == "zero_width":
        return rng.choice(_ZERO_WIDTH).join(term)
    if trick == "traditional":
        table = _s2t()
        return "".join(table.get(ch, ch) for ch in term)
    if trick == "fullwidth":
        return "".join(_FULLWIDTH.get(ch, ch) for ch in term.upper() if ch)
    if trick == "near_form":
        for plain, variants in _NEAR_FORMS.items():
            if plain in term.lower():
                return term.lower().replace(plain, rng.choice(variants), 1)
        return term
    if trick == "pinyin_initials":
        return _PINYIN_INITIALS.get(term.lower(), term)
    if trick == "pinyin_syllable":
        positions = [i for i, ch in enumerate(term) if ch in _PINYIN]
        if not positions:
            return term
        i = rng.choice(positions)
        return term[:i] + _PINYIN[term[i]] + term[i + 1 :]
    return term


def _applies(term: str, trick: str) -> bool:
    lowered = term.lower()
    if trick == "near_form":
        return any(plain in lowered for plain in _NEAR_FORMS)
    if trick == "pinyin_initials":
        return lowered in _PINYIN_INITIALS
    if trick == "pinyin_syllable":
        return any(ch in _PINYIN for ch in term)
    if trick == "traditional":
        return any(ch in _s2t() for ch in term)
    if trick == "fullwidth":
        return any("!" <= ch <= "~" for ch in term)
    if trick in ("separator", "emoji_between", "zero_width"):
        return len(term) > 1
    return False


def obfuscate(text: str, rng: random.Random, tricks: Iterable[str] | None = None) -> str:
    """Rewrite the domain terms of ``text`` with evasion tricks drawn from ``tricks`` (default: all).

    At least one trick that survives normalization is used whenever one applies, so
    ``normalize(result)`` differs from ``normalize(text)`` for most posts.
    """
    allowed = tuple(tricks) if tricks is not None else TRICKS
    spans = _term_spans(text)
    if not spans:  # no domain term: treat one Chinese bigram as the term
        bigrams = [m.start() for m in re.finditer(r"(?=[\u4e00-\u9fff]{2})", text)]
        if bigrams:
            start = rng.choice(bigrams)
            spans = [(start, start + 2)]
    pieces = []
    cursor = 0
    chosen_spans = spans if len(spans) <= 3 else sorted(rng.sample(spans, 3))
    for begin, end in chosen_spans:
        term = text[begin:end]
        candidates = [t for t in allowed if t in (*UNDONE_TRICKS, "pinyin_initials", "pinyin_syllable")]
        usable = [t for t in candidates if _applies(term, t)]
        surviving = [t for t in usable if t in SURVIVING_TRICKS]
        if not usable:
            continue
        trick = rng.choice(surviving) if surviving and rng.random() < 0.5 else rng.choice(usable)
        pieces.append(text[cursor:begin])
        pieces.append(_rewrite_term(term, trick, rng))
        cursor = end
    pieces.append(text[cursor:])
    result = "".join(pieces)
    if "chinese_numerals" in allowed and rng.random() < 0.6:
        result = re.sub(
            r"\d{1,5}",
            lambda m: _chinese_number(int(m.group())).translate(_FINANCIAL if rng.random() < 0.3 else {}),
            result,
        )
    if "emoji_decoration" in allowed and rng.random() < 0.4:
        result = rng.choice(_EMOJI) + result + rng.choice(_EMOJI) * rng.randint(1, 3)
    return result


def augment_frame(
    frame: pd.DataFrame,
    copies: int = 1,
    seed: int = 0,
    labels: Iterable[str] = RISKY_LABELS,
    avoid: Iterable[str] = (),
) -> pd.DataFrame:
    """Obfuscated variants of the rows of ``frame`` whose label is in ``labels``.

    Each variant keeps its source's ``label`` and ``group`` (so group-aware splits keep families
    together), gets the id ``<source id>~a<k>`` and the source ``augmented``. Variants whose normalized
    text equals that of any row in ``frame``, in ``avoid`` or of an earlier variant are dropped.
    """
    import pandas as pd

    rng = random.Random(seed)
    wanted = set(labels)
    seen = {normalize(t) for t in frame["text"]} | {normalize(t) for t in avoid}
    rows = []
    for row in frame.itertuples(index=False):
        if row.label not in wanted:
            continue
        for k in range(copies):
            for _attempt in range(4):
                variant = obfuscate(row.text, rng)
                key = normalize(variant)
                if key not in seen and variant != row.text:
                    seen.add(key)
                    rows.append(
                        {
                            "id": f"{row.id}~a{k + 1}",
                            "text": variant,
                            "label": row.label,
                            "group": row.group,
                            "source": "augmented",
                        }
                    )
                    break
    extra = [c for c in frame.columns if c not in ("id", "text", "label", "group", "source", "_row")]
    result = pd.DataFrame(rows, columns=["id", "text", "label", "group", "source"])
    if extra and not result.empty:
        origin = frame.set_index("group")[extra]
        origin = origin[~origin.index.duplicated()]
        result = result.join(origin, on="group")
    return result


_SEPARATOR_BETWEEN_HAN = re.compile(r"[\u4e00-\u9fff][*./\\|丨\-~·_^+=#]+[\u4e00-\u9fff]")
_INITIALS = re.compile(r"(?<![a-z])(?:" + "|".join(sorted(set(_PINYIN_INITIALS.values()) - {"wx"})) + r")(?![a-z])")
_SYLLABLE_NEXT_TO_HAN = re.compile(
    r"[\u4e00-\u9fff](?:" + "|".join(sorted(set(_PINYIN.values()), key=len, reverse=True)) + r")(?![a-z])"
    r"|(?<![a-z])(?:" + "|".join(sorted(set(_PINYIN.values()), key=len, reverse=True)) + r")[\u4e00-\u9fff]"
)


def detect_evasion(text: str) -> set[str]:
    """The evasion tricks visible in ``text`` (empty for plain text); used for data cards and reports."""
    from duanka.normalize import _char_near_forms, _near_forms, _t2s_table

    found: set[str] = set()
    lowered = text.lower()
    if any(ch in _t2s_table() for ch in text):
        found.add("traditional")
    if any("\uff01" <= ch <= "\uff5e" and ch not in "，！？：；（）" for ch in text):
        found.add("fullwidth")
    if any(ch in _ZERO_WIDTH for ch in text):
        found.add("zero_width")
    if _SEPARATOR_BETWEEN_HAN.search(text):
        found.add("separator")
    if re.search(r"[\u4e00-\u9fff][\U0001F300-\U0001FAFF\u2600-\u27BF]+[\u4e00-\u9fff]", text):
        found.add("emoji_between")
    near_chars = {k for k in _char_near_forms() if k not in "壹贰叁肆伍柒捌玖佰仟"}
    _pattern, table = _near_forms()
    if any(ch in near_chars for ch in text) or any(v in lowered for v in table):
        found.add("near_form")
    if any(ch in "壹贰叁肆伍柒捌玖佰仟" for ch in text):
        found.add("chinese_numerals")
    if _INITIALS.search(lowered) or _SYLLABLE_NEXT_TO_HAN.search(lowered):
        found.add("pinyin")
    return found


def obfuscated_copy(frame: pd.DataFrame, seed: int = 0, labels: Iterable[str] = RISKY_LABELS) -> pd.DataFrame:
    """The same rows with every row whose label is in ``labels`` rewritten by :func:`obfuscate`.

    For robustness evaluation: ids, labels and groups are kept, ``source`` becomes ``obfuscated``.
    """
    rng = random.Random(seed)
    wanted = set(labels)
    out = frame.drop(columns=["_row"], errors="ignore").copy()
    rewritten = [obfuscate(t, rng) if label in wanted else t for t, label in zip(out["text"], out["label"])]
    changed = [new != old for new, old in zip(rewritten, out["text"])]
    out["text"] = rewritten
    out.loc[changed, "source"] = "obfuscated"
    return out
