"""From findings to a score in [0, 1] and a tier.

The score is built so that more or stronger evidence never lowers it:

1. floor = the strongest single finding (its weight after scope modifiers, third-party reports
   mapped onto the tier they mean);
2. combinations lift the floor to a band (C-SSRS logic: ideation + plan, means, timing, final
   arrangements or farewell → imminent; farewell + distress → imminent; …);
3. every other finding adds a little, without leaving the band of step 2.

The tier is the band the score falls in (defaults: concern 0.35, high 0.60, imminent 0.85), so a
tenant that moves the boundaries maps the same score with its own thresholds.
"""

from __future__ import annotations

from typing import Iterable

from plugin.model import Tier
from plugin.screening import rulebook
from plugin.screening.scope import MOOD, Finding

CONCERN, HIGH, IMMINENT = 0.35, 0.60, 0.85
COMBINED_HIGH = 0.64
COMBINED_IMMINENT = 0.88
THIRD_PARTY_HIGH = 0.66
THIRD_PARTY_IMMINENT = 0.90
NEAR = 240  # characters: a time frame or a means counts when it is this close to the ideation
EXTRA_EVIDENCE = 0.05
MANY_SIGNS = 4
MEANS_AT_HAND = rulebook.MEANS_AT_HAND
CIRCUMSTANCES = rulebook.CIRCUMSTANCES
IDEATION = frozenset({"passive_ideation", "active_ideation", "self_harm"})
_ARRANGEMENTS = frozenset({"preparation_final_arrangements", "farewell"})
ACUTE = frozenset({"plan_method_means", "timing", "preparation_final_arrangements", "farewell",
                   "attempt_in_progress"})


def tier_of(score: float) -> Tier:
    if score >= IMMINENT:
        return "imminent"
    if score >= HIGH:
        return "high"
    if score >= CONCERN:
        return "concern"
    return "none"


def _band_top(score: float) -> float:
    for boundary in (CONCERN, HIGH, IMMINENT):
        if score < boundary:
            return boundary - 0.005
    return 1.0


def _near(a: Finding, others: Iterable[Finding]) -> bool:
    return any(abs(a.start - o.start) <= NEAR for o in others)


def _single(finding: Finding) -> float:
    """What one finding means on its own."""
    if "third_party" not in finding.flags:
        return finding.weight
    if finding.category in IDEATION or finding.category == "third_party":
        return max(finding.weight, THIRD_PARTY_HIGH) if finding.weight >= HIGH else finding.weight
    if finding.category == "attempt_in_progress":
        # Happening now (not capped as past or recent by a scope cue) → imminent.
        return max(finding.weight, THIRD_PARTY_IMMINENT) if finding.weight >= IMMINENT else finding.weight
    return finding.weight


def _combinations(live: list[Finding]) -> float:
    """The band that combinations of findings reach (0 when none applies)."""
    own = [f for f in live if "third_party" not in f.flags]
    third = [f for f in live if "third_party" in f.flags]
    # An arrangement or farewell read inside an ideation or mood phrase is that same phrase
    # ("better if I'm not here anymore"), not a second piece of evidence to combine with it.
    statements = [f for f in own if f.category in IDEATION or f.category in MOOD]
    by_category: dict[str, list[Finding]] = {}
    for finding in own:
        if finding.category in _ARRANGEMENTS and any(
                s.start < finding.end and finding.start < s.end for s in statements):
            continue
        by_category.setdefault(finding.category, []).append(finding)

    def has(category: str, minimum: float = 0.0) -> list[Finding]:
        return [f for f in by_category.get(category, []) if f.weight >= minimum]

    ideation = [f for f in own if f.category in IDEATION and f.weight >= HIGH]
    mood = [f for f in own if f.category in MOOD and f.weight >= CONCERN]
    farewell, strong_farewell = has("farewell"), has("farewell", 0.5)
    preparation, strong_preparation = has("preparation_final_arrangements"), has(
        "preparation_final_arrangements", 0.38)
    strong_means = has("plan_method_means", MEANS_AT_HAND)
    floor = 0.0

    if ideation:
        acute_near = [f for f in own if f.category in ("plan_method_means", "timing") and _near(f, ideation)]
        if acute_near or farewell or preparation:
            floor = max(floor, COMBINED_IMMINENT)
    if strong_means and ([f for f in has("timing") if _near(f, strong_means)] or mood or ideation):
        # Means at hand with a time frame, distress or ideation.
        floor = max(floor, COMBINED_IMMINENT)
    if strong_farewell and (mood or ideation or [f for f in has("timing") if _near(f, strong_farewell)]):
        # "After tonight I won't be here anymore": finality with a time frame.
        floor = max(floor, COMBINED_IMMINENT)
    floor = max(floor, _intent_band(own, by_category, mood, strong_means))
    if farewell and (mood or preparation):
        floor = max(floor, COMBINED_HIGH)
    if preparation and (farewell or ideation or (strong_preparation and mood)):
        floor = max(floor, COMBINED_IMMINENT)
    if preparation and mood:
        floor = max(floor, COMBINED_HIGH)
    # Preparatory acts (C-SSRS 6): a strong one (affairs in order, pets given away) with another
    # arrangement is a warning sign; with a time frame or a second strong act it is imminent.
    if strong_preparation and _distinct_spans(preparation) >= 2:
        floor = max(floor, COMBINED_HIGH)
        if has("timing") or _distinct_spans(strong_preparation) >= 2:
            floor = max(floor, COMBINED_IMMINENT)

    # Several distinct warning signs together (low mood, hopelessness, burden, history, …):
    # each phrase is weak, many different ones in the writer's own words are not.
    signs = [f for f in own if f.category not in CIRCUMSTANCES]
    phrases = _distinct_spans(signs)
    if phrases >= MANY_SIGNS and len({f.category for f in signs}) >= 2:
        floor = max(floor, COMBINED_HIGH)
    elif phrases >= 2:
        floor = max(floor, CONCERN + 0.01)
    # A goodbye note: two different farewells in one message, one of them strong. Two rules
    # reading the same words ("die letzte Mail, die ich jemals schreibe") are one farewell.
    if len({f.rule.id for f in strong_farewell}) >= 2 and _distinct_spans(farewell) >= 2:
        floor = max(floor, COMBINED_IMMINENT)

    third_ideation = [f for f in third if (f.category in IDEATION or f.category == "third_party") and f.weight >= HIGH]
    if third_ideation:
        acute = [f for f in live if f.category in ACUTE and f.weight > 0 and (
            "third_party" in f.flags or _near(f, third_ideation))]
        if acute:
            floor = max(floor, THIRD_PARTY_IMMINENT)
    third_farewell = [f for f in third if f.category == "farewell" and f.weight > 0]
    if [f for f in third_farewell if f.weight >= 0.5]:
        floor = max(floor, THIRD_PARTY_IMMINENT)
    # "She said sorry for everything and now she won't answer": a farewell and silence.
    if third_farewell and [f for f in live if f.category == "attempt_in_progress" and f.weight > 0
                           and _near(f, third_farewell)]:
        floor = max(floor, THIRD_PARTY_IMMINENT)
    # Someone else "can't go on" and the writer has called for help: danger now.
    third_despair = [f for f in third if f.category in ("hopelessness", "burden_isolation") and f.weight > 0]
    if third_despair and [f for f in live if f.category == "attempt_in_progress" and f.weight > 0
                          and _near(f, third_despair)]:
        floor = max(floor, THIRD_PARTY_IMMINENT)
    return floor


def _intent_band(own: list[Finding], by_category: dict[str, list[Finding]], mood: list[Finding],
                 strong_means: list[Finding]) -> float:
    """A stated intent with no object ("I'm going to do it", role "intent") means nothing alone
    and nothing with a time alone (a refund "tonight"); with means (C-SSRS 5: intent and means),
    a farewell or final arrangements → imminent; with distress → high, imminent with a time."""
    intent = [f for f in own if f.rule.role == "intent" and f.weight > 0]
    if not intent:
        return 0.0
    timing = [f for f in by_category.get("timing", []) if _near(f, intent)]
    means = [f for f in by_category.get("plan_method_means", []) if f.rule.role != "intent"
             and f.weight > 0 and _near(f, intent)]
    # A bare cancellation ("cancel everything", below 0.20) is not an arrangement here.
    arrangements = [f for f in by_category.get("preparation_final_arrangements", []) if f.weight >= 0.2]
    if strong_means or means or by_category.get("farewell") or arrangements or (mood and timing):
        return COMBINED_IMMINENT
    if mood:
        return COMBINED_HIGH
    return 0.0


def _distinct_spans(findings: list[Finding]) -> int:
    """How many separate phrases (overlapping matches count once)."""
    count, end = 0, -1
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start >= end:
            count += 1
        end = max(end, finding.end)
    return count


def score(findings: list[Finding]) -> float:
    live = [f for f in findings if f.weight > 0]
    if not live:
        return 0.0
    # Distinct rules only: the same phrase repeated is not more evidence.
    per_rule: dict[str, float] = {}
    for finding in live:
        per_rule[finding.rule.id] = max(per_rule.get(finding.rule.id, 0.0), _single(finding))
    singles = sorted(per_rule.values(), reverse=True)
    floor = max(singles[0], _combinations(live))
    extra = EXTRA_EVIDENCE * sum(singles[1:])
    value = min(floor + extra, _band_top(floor))
    return round(min(value, 1.0), 4)
