"""The passage check (plugin/screening/passages.py): passages, the two-model agreement, evidence,
and that passages.json matches its training data."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from plugin.screening import engine, passages, train_passages
from plugin.screening.passages import (PassageModel, evidence, passage_spans, sentence_spans,
                                       strongest_passage)

WORD_MODEL = engine.MODEL
PASSAGE_MODEL = engine.PASSAGES
# A support matter with one risk passage in the middle (written for these tests).
BURIED = ("Hello, my broadband engineer never came on Tuesday and I took the day off work for it. "
          "Honestly I don't see the point in carrying on anymore, I feel like a burden to everyone "
          "and I keep thinking they'd be fine without me. Please rebook the visit for next week. "
          "Thanks")


def test_sentences_and_passages():
    text = "hello there. my order is late!\n\nplease help? thanks"
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert sentences == ["hello there", " my order is late", "please help", " thanks"]
    spans = passage_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "hello there. my order is late", " my order is late!\n\nplease help",
        "please help? thanks"]


def test_a_short_text_is_one_passage_and_an_empty_one_none():
    assert passage_spans("just one sentence here") == [(0, 22)]
    assert passage_spans("one. two") == [(0, 8)]
    assert passage_spans("") == [] and passage_spans(" ... \n ") == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab .!?\n", max_size=80))
def test_passages_are_consecutive_sentence_pairs(text):
    sentences = sentence_spans(text)
    for (a, b), (c, d) in zip(sentences, sentences[1:]):
        assert a < b < c < d and re.search(r"[.!?\n]", text[b:c])
        assert not text[b:c].strip(".!?\n \t")  # between sentences: breaks and blanks only
    assert all(text[a:b].strip() and not re.search(r"[.!?\n]", text[a:b]) for a, b in sentences)
    spans = passage_spans(text)
    if len(sentences) <= 2:
        assert spans == ([(sentences[0][0], sentences[-1][1])] if sentences else [])
    else:
        assert spans == [(sentences[i][0], sentences[i + 1][1]) for i in range(len(sentences) - 1)]


def test_the_whole_text_model_must_agree_on_the_same_passage():
    # A passage model that (wrongly) finds risk in a refund: the whole-text model, reading the
    # same passage, does not, so no passage is returned.
    refund_lover = PassageModel(bias=-2.0, threshold=0.5, weights={"refund": 6.0}, trained_on=1)
    text = "my parcel never came. please send the refund to my card. thanks"
    assert refund_lover.probability(passages.passage_features("please send the refund")[0]) > 0.9
    assert strongest_passage(refund_lover, WORD_MODEL, text) is None


def test_a_ticket_of_one_passage_was_already_read_whole():
    # Both models read this as risk, but the word model already judged the whole (short) text.
    short = engine.canonical_text("Honestly I don't see the point in carrying on anymore. "
                                  "I feel like a burden to everyone and I keep thinking they'd be "
                                  "fine without me.")
    assert len(passage_spans(short)) == 1
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, short) is None
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, short + " " + short) is not None


def test_a_short_passage_must_meet_the_word_models_short_text_bar():
    # A look-alike from the case files (a move abroad: "transfer my account to my brother, I
    # won't need it from tomorrow"), greeted: both models read its passage as risk at their
    # usual thresholds, but it is short, and the word model is not as sure as it must be of a
    # short ticket. (The retrained model of session 6 no longer reads session 5's example,
    # "alles bereit: neuer Router und Kabel. Heute Abend mach ich es", as risk at all.)
    text = engine.canonical_text("Hello. Ich ziehe nach Kanada. Bitte übertragen Sie mein Konto "
                                 "auf meinen Bruder, ich werde es ab morgen nicht mehr brauchen. "
                                 "Thanks")
    agreeing = []
    for start, end in passage_spans(text):
        features, words = passages.passage_features(text[start:end])
        second = passages.word_model_probability(WORD_MODEL, features, words)
        if (PASSAGE_MODEL.probability(features) >= PASSAGE_MODEL.threshold
                and second >= WORD_MODEL.at_risk.threshold):
            assert words < passages.SHORT_TEXT_WORDS and second < passages.SHORT_TEXT_THRESHOLD
            agreeing.append((start, end))
    assert agreeing, "the example no longer exercises the short-passage bar: pick another"
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, text) is None


def test_a_buried_risk_passage_is_found_and_an_ordinary_ticket_has_none():
    risk = engine.canonical_text(BURIED)
    found = strongest_passage(PASSAGE_MODEL, WORD_MODEL, risk)
    assert found is not None
    assert "point in carying on" in risk[found.start:found.end]  # canonical: doubles collapsed
    assert found.probability >= PASSAGE_MODEL.threshold
    assert found.word_model >= WORD_MODEL.at_risk.threshold
    ordinary = engine.canonical_text("hi, order 88412 arrived with a cracked screen protector. the box was fine but the "
                "protector inside was broken. could you send a replacement or refund the 12.99? "
                "i use the phone for work every day. thanks, maria")
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, ordinary) is None


def test_evidence_is_a_few_phrases_inside_the_passage():
    text = engine.canonical_text(BURIED)
    found = strongest_passage(PASSAGE_MODEL, WORD_MODEL, text)
    assert found is not None
    phrases = evidence(PASSAGE_MODEL, text, found)
    assert 1 <= len(phrases) <= 3
    assert phrases == sorted(phrases)
    for start, end, weight in phrases:
        assert found.start <= start < end <= found.end and weight > 0


def test_passages_json_matches_its_training_data():
    # Retraining takes ~1.5 minutes, so the digest stands in for it: editing a training file,
    # a setting or the word model without `python -m plugin.screening.train_passages` fails here.
    assert PASSAGE_MODEL.training_digest == train_passages.training_digest(WORD_MODEL), (
        "passages.json is stale: run python -m plugin.screening.train_passages")
    assert PASSAGE_MODEL.trained_on > 5000 and 0.5 <= PASSAGE_MODEL.threshold < 0.99


# ---------------------------------------------------------------- in screen()


GREETING = "Hello, my broadband engineer never came on Tuesday and I took the day off work for it. "
SIGN_OFF = " Please rebook the visit for next week. Thanks"
ORDINARY = ("The router also drops the connection every evening around eight. I restarted it twice "
            "and checked every cable. The app says the line is fine but the light keeps blinking. ")


def _passage_signals(assessment):
    return [s for s in assessment.signals if s.rule.startswith("model.passage.")]


def test_screen_raises_a_ticket_with_a_buried_risk_passage_to_high():
    by_rules = engine.screen_by_rules(BURIED)
    assert by_rules.tier in ("none", "concern")
    assessment = engine.screen(BURIED)
    assert assessment.tier == "high"
    assert 0.60 <= assessment.score < 0.85
    raised = _passage_signals(assessment)
    assert raised and all(s.rule == "model.passage.high" for s in raised)
    quoted = [BURIED[s.start:s.end] for s in raised]
    # The customer's own words from the risk sentence, a few at a time, not the ticket.
    risk_sentence = BURIED[BURIED.index("Honestly"):BURIED.index(" Please rebook")]
    assert all(q and q in risk_sentence and len(q) < 60 for q in quoted), quoted
    assert not any(q.lower() in ("to", "i", "and", "the") for q in quoted), quoted
    # The rules' own signals are kept beside the model's.
    assert {s.rule for s in by_rules.signals} <= {s.rule for s in assessment.signals}


def test_a_long_ticket_does_not_dilute_the_risk_passage_away():
    # Ordinary sentences around the risk sentence lower the whole-text model's probability far
    # below the gate; the rules' concern still sends the ticket to the passage check.
    text = GREETING + ORDINARY * 3 + BURIED[BURIED.index("Honestly"):BURIED.index(" Please")] + SIGN_OFF
    assert engine.learned.opinion(engine.MODEL, engine.canonical_text(text)).at_risk < passages.GATE
    assert engine.screen_by_rules(text).tier == "concern"
    assessment = engine.screen(text)
    assert assessment.tier == "high" and _passage_signals(assessment)


def test_screen_leaves_an_ordinary_long_ticket_alone():
    # Arrangement, money and timing words in plain use; the whole-text model gives it enough
    # probability for the passage check to read it.
    ordinary = ("Hello, I'm leaving the country on Friday and I won't need the account anymore "
                "after tonight. Please transfer the remaining balance to my brother and close "
                "everything. Thanks for all your help over the years. Regards, Ana")
    assert engine.learned.opinion(engine.MODEL, engine.canonical_text(ordinary)).at_risk >= passages.GATE
    assert engine.screen(ordinary).tier == "none"


def test_the_passage_check_does_not_run_when_the_rules_already_said_high():
    text = GREETING + BURIED[BURIED.index("Honestly"):BURIED.index(" Please")] + " I want to kill myself." + SIGN_OFF
    canonical = engine.canonical_text(text)
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, canonical) is not None
    assessment = engine.screen(text)
    assert assessment.tier in ("high", "imminent")
    assert not _passage_signals(assessment)


def test_a_passage_holding_a_disowned_statement_is_not_read():
    risk = engine.canonical_text(BURIED)
    found = strongest_passage(PASSAGE_MODEL, WORD_MODEL, risk)
    assert found is not None
    inside = (found.start + 2, found.start + 10)
    again = strongest_passage(PASSAGE_MODEL, WORD_MODEL, risk, disowned=[inside])
    assert again is None or not (again.start < inside[1] and inside[0] < again.end)
    outside = (len(risk) - 3, len(risk))  # in the sign-off, outside the risk passage
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, risk, disowned=[outside]) == found


def test_screen_hands_the_rules_disowned_spans_to_the_passage_check(monkeypatch):
    # A reassurance the rules scope out ("I'm not suicidal, just furious") must keep its passage
    # from being read; the engine passes those spans on. Seen by wrapping the real function.
    seen = []
    real = passages.strongest_passage

    def spy(passage_model, word_model, canonical, disowned=()):
        seen.append(list(disowned))
        return real(passage_model, word_model, canonical, disowned)

    monkeypatch.setattr(passages, "strongest_passage", spy)
    text = ("Your app charged me twice again. Honestly I'm not going to hurt myself over this, but "
            "I can't cope with any of it anymore and I just want it all to stop. Please refund "
            "the second payment. Thanks")
    assert engine.screen(text).tier in ("none", "concern")
    assert seen and seen[0], "the negated statement's span was not handed over"


def test_a_past_statement_is_disowned_before_the_passages_are_read():
    # Told as past (the rules flag it historical): its passage is not read, although both
    # models would read the same words as risk.
    middle = ("Years ago I tried to kill myself because I felt like a burden to everyone and "
              "wanted it all to stop.")
    text = GREETING + middle + SIGN_OFF
    canonical = engine.canonical_text(text)
    assert strongest_passage(PASSAGE_MODEL, WORD_MODEL, canonical) is not None
    assessment = engine.screen(text)
    assert "historical" in assessment.flags
    assert assessment.tier in ("none", "concern") and not _passage_signals(assessment)


# ---------------------------------------------------------------- training data


def test_a_bad_passage_training_line_names_its_file_and_line(tmp_path, monkeypatch):
    bad = tmp_path / "xx-passneg.jsonl"
    bad.write_text('{"text": "my parcel is late. please refund it", "tier": "none"}\nnot json\n')
    with pytest.raises(ValueError, match=r"xx-passneg.jsonl:2: not a JSON object"):
        train_passages.load_tickets([bad])
    # A passage negative is ordinary text by definition: any other tier is a mistake.
    monkeypatch.setattr(train_passages, "NEGATIVE_FILES", (bad,))
    bad.write_text('{"text": "fine", "tier": "none"}\n{"text": "I want to die", "tier": "high"}\n')
    with pytest.raises(ValueError, match=r"xx-passneg.jsonl:2: a passage negative must be tier none"):
        train_passages.load_tickets([bad])
    bad.write_text('{"text": "my parcel is late. please refund it. thanks", "tier": "none"}\n')
    [(tier, passages_read, negative)] = train_passages.load_tickets([bad])
    assert tier == "none" and negative and len(passages_read) == 2
