"""Regenerate the rule caches after editing a rules file: `python -m plugin.screening.reindex`.

- rules/literals.json: per rule, the strings the prefilter looks for, keyed by the rule's pattern
  and macros. A rule whose entry does not match is analysed at import instead (correct, just
  slower), and tests/unit/test_screening_rules.py fails until the file is regenerated.
- rules/compiled.json: the compiled form of every rule, cue and prefilter regex for this Python
  build (see plugin/screening/compiled.py); a start-up accelerator only.
"""

from __future__ import annotations

import json
from typing import Any

from plugin.screening import compiled
from plugin.screening.rulebook import (
    LITERAL_CACHE,
    analyse_rule,
    frequent_words,
    load,
    load_language_file,
    rule_files,
    rule_key,
    rules_folder,
)

# The scope cues the engine compiles per rule language (alone, or with the text's language;
# other pairs compile on first use).
_PER_LANGUAGE_CUES = ("negators", "hypothetical", "reassurance", "past", "recovered", "recent",
                      "clause_breaks", "contrast", "subject")


def literal_cache_document() -> dict[str, Any]:
    """The content of rules/literals.json for the rules files as they are now."""
    languages = [load_language_file(name, text) for name, text in rule_files()]
    frequent = frequent_words({lang.code: lang for lang in languages})
    rules = {
        rule.id: {"key": rule_key(rule), "literals": analyse_rule(rule, frequent)}
        for lang in languages
        for rule in lang.rules
    }
    return {"about": "Prefilter strings per rule, derived from the rules files; regenerate with "
                     "`python -m plugin.screening.reindex`.", "rules": rules}


def write_literal_cache() -> str:
    """Regenerate rules/literals.json in the source tree; returns its path."""
    path = str(rules_folder().joinpath(LITERAL_CACHE))
    with open(path, "w", encoding="utf-8") as out:
        json.dump(literal_cache_document(), out, ensure_ascii=False, indent=1, sort_keys=True)
        out.write("\n")
    return path


def write_compiled_cache() -> str:
    """Compile every rule, cue and prefilter regex of a fresh rulebook, plus the cue sets the
    engine builds most (per language, and per language with English), and store their
    compiled form. Other sets compile on first use."""
    compiled.start_recording()
    book = load()  # a fresh rulebook, read after literals.json was rewritten
    book.compile_all()
    book.literal_finder  # noqa: B018 - the non-ASCII finder compiles on first use; cache it too
    book.ascii_finder  # noqa: B018 - so does the ASCII finder's regex form (without pyahocorasick)
    for code in sorted(book.languages):
        # English rules run on every text, so English pairs with each language are common.
        for group in ((code,), tuple(sorted({"en", code}))):
            for key in _PER_LANGUAGE_CUES:
                book.cue(key, group)
            book.cue("lookalikes", group)
    return compiled.write_cache(compiled.recorded())


def main() -> int:
    print(write_literal_cache())
    print(write_compiled_cache())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
