"""MongoDB `$text` search strings translated to SQLite FTS5 queries.

MongoDB's semantics (what BigchainDB's assets and metadata search gives): terms are ORed; "quoted phrases"
must all appear; a term prefixed with "-" excludes documents containing it; a search of only negations
matches nothing. Case and diacritics are ignored and English words are stemmed (the FTS5 tokenizer does
that: porter over unicode61 with remove_diacritics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass
class TextQuery:
    """A parsed `$text` search: ORed terms, ANDed phrases, excluded terms."""

    terms: list[str] = field(default_factory=list)
    phrases: list[list[str]] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)


def parse(search: str) -> TextQuery:
    """Split a MongoDB `$text` search string into terms, phrases and negations."""
    query = TextQuery()
    for match in _TOKEN.finditer(search):
        phrase, word = match.group(1), match.group(2)
        if phrase is not None:
            words = _WORD.findall(phrase)
            if words:
                query.phrases.append(words)
        elif word.startswith("-"):
            query.negated.extend(_WORD.findall(word[1:]))
        else:
            query.terms.extend(_WORD.findall(word))
    return query


def to_fts5(query: TextQuery) -> str | None:
    """The FTS5 MATCH expression for `query`, or None when nothing can match."""
    if query.phrases:
        positive = " AND ".join(_quote(" ".join(words)) for words in query.phrases)
    elif query.terms:
        positive = "(" + " OR ".join(_quote(term) for term in query.terms) + ")"
    else:
        return None
    for term in query.negated:
        positive += f" NOT {_quote(term)}"
    return positive


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
