"""The three labels, in the order every probability vector uses, and what counts as risky."""

CARD_TRADING = "card_trading"
RECRUITMENT_LURE = "recruitment_lure"
NORMAL = "normal"

LABELS: tuple[str, ...] = (CARD_TRADING, RECRUITMENT_LURE, NORMAL)
RISKY_LABELS: tuple[str, ...] = (CARD_TRADING, RECRUITMENT_LURE)
