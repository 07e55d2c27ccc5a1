"""`careroute screen`: screen one text, a JSONL file, or evaluate on a labelled file.

    careroute screen TEXT [--locale LL]
    careroute screen --jsonl IN [--out OUT]      {"id","text","locale"?} → {"id","tier","score","signals"}
    careroute screen --eval LABELLED.jsonl       table per source and language: CareRoute, its
                                                 rules alone, and two baselines
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from plugin.model import Assessment

_ANSI_ON, _ANSI_OFF = "\033[1;31m", "\033[0m"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "screen",
        help="screen text for crisis signals",
        description="Screen one text, a JSONL file of texts, or evaluate on a labelled JSONL file.",
    )
    parser.add_argument("text", nargs="?", help="the text to screen ('-' reads standard input)")
    parser.add_argument("--locale", help="requester locale hint, e.g. es or pt-BR")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--jsonl", metavar="IN", help='JSONL input: {"id","text","locale"?} per line')
    mode.add_argument("--eval", metavar="FILE", help="labelled JSONL: {\"text\",\"tier\",\"source\"?,\"lang\"?}")
    parser.add_argument("--out", metavar="OUT", help="with --jsonl: write results here (default stdout)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "eval", None):
        return _run_eval(args.eval)
    if getattr(args, "jsonl", None):
        return _run_jsonl(args.jsonl, getattr(args, "out", None))
    text = args.text
    if text is None:
        print("screen: give a TEXT, --jsonl IN or --eval FILE", file=sys.stderr)
        return 2
    if text == "-":
        text = sys.stdin.read()
    from plugin.screening import screen

    assessment = screen(text, locale=args.locale)
    sys.stdout.write(render(text, assessment, color=sys.stdout.isatty()))
    return 0


def highlight(text: str, assessment: Assessment, *, color: bool) -> str:
    """The text with every signal span marked: ANSI bold red on a terminal, [[…]] otherwise."""
    opening, closing = (_ANSI_ON, _ANSI_OFF) if color else ("[[", "]]")
    spans: list[tuple[int, int]] = []
    for signal in sorted(assessment.signals, key=lambda s: (s.start, -s.end)):
        if spans and signal.start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], signal.end))
        else:
            spans.append((signal.start, signal.end))
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], opening, text[start:end], closing]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def render(text: str, assessment: Assessment, *, color: bool) -> str:
    flags = ", ".join(sorted(assessment.flags)) or "-"
    lines = [
        f"tier: {assessment.tier}   score: {assessment.score:.3f}   language: {assessment.language}   flags: {flags}",
    ]
    for signal in assessment.signals:
        signal_flags = ",".join(sorted(signal.flags)) or "-"
        lines.append(
            f"  {signal.rule:<36} {signal.category:<30} weight {signal.weight:.2f}  "
            f"[{signal.start}:{signal.end}]  flags {signal_flags}  {text[signal.start:signal.end]!r}"
        )
    lines.append("")
    lines.append(highlight(text, assessment, color=color))
    return "\n".join(lines) + "\n"


def result_record(record_id: Any, assessment: Assessment) -> dict[str, Any]:
    return {
        "id": record_id,
        "tier": assessment.tier,
        "score": assessment.score,
        "signals": [
            {"rule": s.rule, "category": s.category, "start": s.start, "end": s.end}
            for s in assessment.signals
        ],
        "flags": sorted(assessment.flags),
        "language": assessment.language,
    }


def _run_jsonl(path: str, out_path: str | None) -> int:
    from plugin.screening import screen

    errors = 0
    out: IO[str] = open(out_path, "w", encoding="utf-8") if out_path else sys.stdout
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
                locale = record.get("locale") if isinstance(record, dict) else None
                if not (isinstance(record, dict) and isinstance(record.get("text"), str)
                        and (locale is None or isinstance(locale, str))):
                    print(f"screen: line {number}: expected a JSON object with a string 'text' "
                          f"(and optional string 'locale'); skipped", file=sys.stderr)
                    errors += 1
                    continue
                assessment = screen(record["text"], locale=locale)
                out.write(json.dumps(result_record(record.get("id"), assessment), ensure_ascii=False) + "\n")
    except OSError as exc:
        print(f"screen: cannot read or write a file ({exc.strerror})", file=sys.stderr)
        return 2
    finally:
        if out_path:
            out.close()
    return 1 if errors else 0


def _run_eval(path: str) -> int:
    from plugin.screening import evaluation

    try:
        with open(path, encoding="utf-8") as source:
            items = evaluation.read_labelled(source)
    except OSError as exc:
        print(f"screen: cannot read {path} ({exc.strerror})", file=sys.stderr)
        return 2
    except evaluation.LabelledFileError as exc:
        print(f"screen: {exc}", file=sys.stderr)
        return 2
    systems: dict[str, evaluation.Predictor] = {
        "careroute": evaluation.careroute_tier,
        "rules-only": evaluation.rules_only_tier,
        "keywords": evaluation.naive_keyword_tier,
    }
    vader = evaluation.vader_predictor()
    if vader is not None:
        systems["vader"] = vader
    rows = evaluation.evaluate(items, systems)
    for line in evaluation.format_table(rows):
        print(line)
    if vader is None:
        print("\nsentiment baseline skipped: vaderSentiment is not installed (pip install vaderSentiment)")
    print("\nat-risk = labelled high|imminent flagged >= high; immin. = labelled imminent flagged imminent;"
          "\nany = labelled >= concern flagged at all; f.alarm = labelled none flagged >= high;"
          "\nnone-flag = labelled none flagged at all.")
    return 0
