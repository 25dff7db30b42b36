"""Rebuild the augmented rows of data/posts.csv from its hand-written rows, deterministically.

    python data/build_posts.py            # rewrites data/posts.csv in place (same bytes when nothing changed)

Hand-written rows are the source of truth. A fixed share of them (chosen by a hash of their id, so the
choice does not move when rows are added) gets one obfuscated variant from duanka.training.augment, which keeps
the source row's label, group, genre and hard flag.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd

from duanka.training.augment import augment_frame
from duanka.training.dataset import load_posts

SEED = 2026
SHARE = {"card_trading": 45, "recruitment_lure": 45, "normal": 14}  # percent of hand-written rows per label


def _chosen(row_id: str, label: str) -> bool:
    bucket = int(hashlib.sha256(row_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return bucket < SHARE[label]


def build(path: Path) -> pd.DataFrame:
    # Old augmented rows are discarded unvalidated: a change of normalization can make them duplicates.
    frame = pd.read_csv(path, dtype={"id": str, "group": str}, keep_default_na=False)
    handwritten = frame[frame["source"] == "handwritten"].reset_index(drop=True)
    picked = handwritten[[_chosen(i, label) for i, label in zip(handwritten["id"], handwritten["label"])]]
    variants = augment_frame(picked, copies=1, seed=SEED, labels=SHARE, avoid=handwritten["text"])
    out = pd.concat([handwritten, variants], ignore_index=True)
    return out.sort_values(["group", "id"], kind="stable").reset_index(drop=True)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("posts.csv"))
    rebuilt = build(target)
    rebuilt.to_csv(target, index=False)
    load_posts(target)  # the result must validate
    print(f"{target}: {len(rebuilt)} rows, {int((rebuilt['source'] != 'handwritten').sum())} augmented")
