"""Regenerate rules/literals.json after editing a rules file: `python -m plugin.screening.reindex`.

The file holds, per rule, the strings the prefilter looks for, keyed by the rule's pattern and
macros. It only makes the import fast: a rule whose entry does not match is analysed at import
instead (correct, just slower), and tests/unit/test_screening_rules.py fails until the file is
regenerated.
"""

from __future__ import annotations

import json
from typing import Any

from plugin.screening.rulebook import (
    LITERAL_CACHE,
    analyse_rule,
    frequent_words,
    load_language_file,
    rule_files,
    rule_key,
    rules_folder,
)


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


def main() -> int:
    print(write_literal_cache())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
