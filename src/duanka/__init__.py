"""duanka: detect card trading and the job lures that recruit for it in Chinese posts."""

from duanka._version import __version__
from duanka.normalize import normalize
from duanka.scorer import Scorer, ScoreResult

__all__ = ["ScoreResult", "Scorer", "__version__", "normalize"]
