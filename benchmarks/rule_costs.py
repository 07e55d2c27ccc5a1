"""Which rules cost screening time: `python -m benchmarks.rule_costs [--tickets 3000] [--top 15]`.

A rule's regex only runs on a ticket when its prefilter strings occur there (rules/literals.json),
so a rule whose strings are common words ("numb" is found in "number") runs on many ordinary
tickets. This runs every rule the engine would run on the screening benchmark's tickets (the
ticket's languages, plus another language's rules where its stopwords are frequent enough), times
each regex, and prints the costliest, with the prefilter strings that let them through. Use it
after adding rules: a new rule near the top needs more selective strings.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

from benchmarks.screening import synthetic_tickets
from plugin.screening import engine
from plugin.screening.canonical import canonical_text


@dataclass(frozen=True)
class RuleCost:
    rule: str
    runs: int                   # tickets the rule's regex ran on
    microseconds_per_ticket: float  # its regex time, averaged over all tickets
    strings: tuple[str, ...]    # prefilter strings found that let it run, most frequent first


def rule_costs(tickets: list[str]) -> list[RuleCost]:
    """Per rule that ran at least once: runs and regex time, costliest first."""
    book = engine.BOOK
    index_of = {rule.id: i for i, rule in enumerate(book.rules)}
    runs: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    strings: dict[str, Counter[str]] = {}
    for ticket in tickets:
        canonical = canonical_text(ticket, book)
        hits = engine._stopword_hits(canonical, book)
        active = engine.languages_to_run(hits, "", book)
        found = _found_strings(book, canonical)
        for rule in book.candidate_rules(canonical):
            if rule.supporting:
                continue
            if rule.language not in active and hits.get(rule.language, 0) < engine._MIN_LANGUAGE_HITS:
                continue
            started = time.perf_counter()
            for _ in rule.regex.finditer(canonical):
                pass
            seconds[rule.id] += time.perf_counter() - started
            runs[rule.id] += 1
            index = index_of[rule.id]
            strings.setdefault(rule.id, Counter()).update(
                s for s in found if index in book.rules_by_literal.get(s, ()))
    count = max(1, len(tickets))
    rows = [RuleCost(rule, runs[rule], seconds[rule] / count * 1e6,
                     tuple(s for s, _ in strings.get(rule, Counter()).most_common(3)))
            for rule in runs]
    return sorted(rows, key=lambda row: -row.microseconds_per_ticket)


def _found_strings(book, canonical: str) -> list[str]:
    if book.ascii_finder is not None and canonical.isascii():
        return book.ascii_finder.findall(" " + canonical.translate(book.ascii_separators))
    finder = book.literal_finder
    return finder.findall(canonical.replace("\n", " ")) if finder is not None else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rule_costs",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    tickets = synthetic_tickets(args.tickets)
    rows = rule_costs(tickets)
    total = sum(row.microseconds_per_ticket for row in rows)
    print(f"rule regexes: {total:.1f} µs per ticket over {len(tickets)} benchmark tickets")
    print(f"{'rule':<45} {'runs':>6} {'µs/ticket':>10}  strings that let it run")
    for row in rows[:args.top]:
        print(f"{row.rule:<45} {row.runs:>6} {row.microseconds_per_ticket:>10.2f}  "
              f"{', '.join(repr(s) for s in row.strings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
