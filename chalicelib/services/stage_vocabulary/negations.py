"""Words that turn a concept word around: "не", "not", "sin", "değil", "un-", "dis-"."""

from __future__ import annotations

from chalicelib.services.stage_vocabulary.concept import stems

# Words that negate the next concept word; Turkish "değil" follows the word it negates.
NEGATIONS = stems("""
    ru не нет без
    uk не без
    en not no non without
    es no sin
    pt nao sem
    id tidak belum bukan tanpa
""")
POST_NEGATIONS = stems("""
    tr degil
""")
# Negation glued to the word: "неразобранное", "unqualified", "disqualified", "descalificado".
NEGATING_PREFIXES = stems("""
    ru не
    en un dis
    es des
""")
