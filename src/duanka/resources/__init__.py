"""Data files read by duanka: character tables, near-forms and the domain term list."""
