"""duanka: detect card trading and the job lures that recruit for it in Chinese posts."""

from duanka._version import __version__
from duanka.scoring.scorer import Scorer, ScoreResult
from duanka.text.normalize import normalize

__all__ = ["ScoreResult", "Scorer", "__version__", "normalize"]
