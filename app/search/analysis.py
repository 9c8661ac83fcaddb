"""How text becomes the index's terms: one analyzer per corpus language.

Documents and queries go through the same analyzer, so a word finds what the index made
of the same word in an article. Letters and digits only, lower-cased, accents folded;
words then cut to their stem by the language's Snowball stemmer (`city` and `cities` are
both `citi`), except in the fields of words as written, which typo tolerance compares
letter by letter. Knows nothing of HTTP or of the database.
"""

from typing import get_args

import tantivy

from app.settings import Language

# Words longer than this are dropped by the analyzer, on both sides (documents and queries).
MAX_TERM_CHARS = 80
DEFAULT_LANGUAGE: Language = "en"
NO_STEMMER: Language = "none"
# ISO 639-1 code -> the name of tantivy's Snowball stemmer (app/settings.py lists the codes).
STEMMERS: dict[str, str] = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
assert set(STEMMERS) | {NO_STEMMER} == set(get_args(Language)), "a language without a stemmer"


def analyzer(language: str, *, stem: bool = True) -> tantivy.TextAnalyzer:
    """Letters and digits, lower-cased, accents folded, and (with `stem`) the stems of
    `language`. Without `stem`: words as written, for prefixes (a stemmer would cut
    `palmy` to `palmi`) and typo tolerance (which compares what was typed)."""
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TERM_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stem and language in STEMMERS:
        builder = builder.filter(tantivy.Filter.stemmer(STEMMERS[language]))
    return builder.build()
