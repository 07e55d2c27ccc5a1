"""The word model (plugin/screening/learned.py), its training (train.py) and how the engine
combines it with the rules: it may raise a tier, never lower one, and it says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.model import tier_rank
from plugin.screening import engine, learned, train
from plugin.screening.engine import canonical_text, screen, screen_by_rules

from tests.unit.test_screening_languages import LANGUAGES, load_cases


ROOT = Path(__file__).resolve().parents[2]


def hand_model(risk: dict[str, float], imminent: dict[str, float] | None = None,
               third: dict[str, float] | None = None) -> learned.WordModel:
    """A model with weights chosen by hand: fusion tests must not depend on training."""
    vocabulary = sorted(set(risk) | set(imminent or {}) | set(third or {}))

    def head(weights: dict[str, float] | None) -> learned.Head:
        weights = weights or {}
        return learned.Head(bias=-4.0, threshold=0.8,
                            weights={f: weights.get(f, 0.0) for f in vocabulary})

    return learned.WordModel(at_risk=head(risk), imminent=head(imminent), third_party=head(third),
                             trained_on=0)


# ---------------------------------------------------------------- the shipped model


def test_learned_json_was_trained_from_the_training_files_as_they_are() -> None:
    assert engine.MODEL.training_digest == train.training_digest(), (
        "plugin/screening/training changed: run python -m plugin.screening.train")


def test_the_loaded_heads_read_the_weights_written_in_learned_json() -> None:
    # The three heads share one packed store; each must still give back exactly what training
    # wrote.
    data = json.loads(learned.MODEL_PATH.read_text(encoding="utf-8"))
    vocabulary = data["features"]
    assert set(engine.MODEL.vocabulary) == set(vocabulary)
    for field, name in enumerate(learned.HEADS):
        head = getattr(engine.MODEL, name)
        written = {f: learned.unpack(packed)[field] for f, packed in zip(vocabulary, data["packed"])}
        assert {f: head.weights.get(f, 0.0) for f in vocabulary} == written, name
        assert head.bias == data["heads"][name]["bias"]
    assert 0.5 <= engine.MODEL.at_risk.threshold < 1.0


def test_a_model_file_whose_columns_disagree_is_refused(tmp_path) -> None:
    data = json.loads(learned.MODEL_PATH.read_text(encoding="utf-8"))
    data["packed"] = data["packed"][:-1]
    broken = tmp_path / "learned.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="features but"):
        learned.WordModel.load(broken)
    data["version"] = 2
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model format"):
        learned.WordModel.load(broken)
    broken.write_text(json.dumps({"version": 3, "features": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model format"):
        learned.WordModel.load(broken)
    broken.write_text('{"version": 3, "features": [', encoding="utf-8")
    with pytest.raises(ValueError, match="learned.json: not valid JSON"):
        learned.WordModel.load(broken)


def test_packed_weights_read_like_a_mapping() -> None:
    model = hand_model({"alpha": 1.25, "beta": -0.5}, imminent={"alpha": 0.75})
    risk, imminent = model.at_risk.weights, model.imminent.weights
    assert model.known(["alpha", "gamma", "alpha"]) == {"alpha"}
    assert model.head_sums(model.known(["alpha", "beta"])) == (0.75, 0.75)
    loaded = learned.WordModel.load()
    view = loaded.at_risk.weights
    feature = next(iter(loaded.vocabulary))
    assert isinstance(view, learned.PackedWeights)
    assert feature in view and "no such feature at all" not in view
    assert view.get("no such feature at all", 0.0) == 0.0
    assert view[feature] == learned.unpack(loaded.both[feature])[0]
    assert len(view) == len(loaded.vocabulary) and risk["alpha"] == 1.25 and imminent["alpha"] == 0.75


@pytest.mark.parametrize("text", [
    # Written for this test, not in the training files: final arrangements and finality
    # in words no rule lists.
    "Hi, quick one. Please put the deposit refund in my brother's name, he'll know what to do "
    "with it. I've made my peace with everything and I won't be needing the flat or anything "
    "else after this weekend. Thanks for always being kind on the phone.",
    "Hola, por favor pasad la cuenta a nombre de mi hija. Ya lo he dejado todo atado y después "
    "de este fin de semana no voy a necesitar nada más. Gracias por la paciencia de siempre.",
])
def test_the_model_raises_implicit_final_arrangements_the_rules_miss(text: str) -> None:
    by_rules = screen_by_rules(text)
    combined = screen(text)
    assert tier_rank(by_rules.tier) < tier_rank("high")
    assert tier_rank(combined.tier) >= tier_rank("high")
    evidence = [s for s in combined.signals if s.rule.startswith("model.")]
    assert evidence, "a raised tier must say why"
    for signal in evidence:
        assert signal.category == engine.MODEL_CATEGORY
        assert 0 <= signal.start < signal.end <= len(text)
        assert text[signal.start:signal.end].strip()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_model_never_lowers_what_the_rules_found(language: str) -> None:
    for case in load_cases(language):
        by_rules = screen_by_rules(case["text"], locale=case.get("locale"))
        combined = screen(case["text"], locale=case.get("locale"))
        assert tier_rank(combined.tier) >= tier_rank(by_rules.tier), case["id"]
        assert combined.score >= by_rules.score, case["id"]


def test_screening_with_the_model_is_deterministic() -> None:
    text = ("Please send the refund to my mum. I've sorted everything and I won't be around "
            "after tonight. Thank you for your help over the years.")
    first = screen(text)
    assert all(screen(text) == first for _ in range(5))


# ---------------------------------------------------------------- fusion, with a hand-made model


def test_a_model_opinion_lifts_a_ticket_to_high_with_its_phrases_as_signals(monkeypatch) -> None:
    monkeypatch.setattr(engine, "MODEL", hand_model({"lantern": 3.5, "lantern glows": 3.5}))
    text = "The lantern glows in the hallway. Order 5521."
    assessment = screen(text)
    assert assessment.tier == "high"
    assert engine.scoring.HIGH <= assessment.score < engine.scoring.IMMINENT
    spans = {text[s.start:s.end] for s in assessment.signals if s.rule == "model.high"}
    assert spans == {"lantern glows"}  # overlapping features join into one phrase


def test_the_imminent_head_lifts_to_imminent_only_when_the_rules_found_less_than_high(
        monkeypatch) -> None:
    model = hand_model({"lantern": 7.0, "suicidal": 7.0}, imminent={"lantern": 7.0, "suicidal": 7.0})
    monkeypatch.setattr(engine, "MODEL", model)
    assert screen("The lantern is lit. Order 5521.").tier == "imminent"
    explicit = "I have been feeling suicidal for weeks. Please pause my account."
    assert screen_by_rules(explicit).tier == "high"
    # The rules judged this explicit statement's acuity: the model does not overrule it.
    assert screen(explicit).tier == "high"


def test_the_third_party_head_sets_the_flag(monkeypatch) -> None:
    monkeypatch.setattr(engine, "MODEL", hand_model(
        {"lantern": 7.0}, third={"neighbour": 6.0}))
    assert "third_party" in screen("My neighbour lit the lantern.").flags
    assert "third_party" not in screen("I lit the lantern.").flags


def test_statements_the_rules_read_as_negated_are_no_evidence(monkeypatch) -> None:
    monkeypatch.setattr(engine, "MODEL", hand_model({"hurt myself": 7.0, "hurt": 2.0}))
    negated = "Don't worry, I'm not going to hurt myself over a parcel, but I want my money back."
    assert screen(negated).tier == "none"
    assert screen("I keep wanting to hurt myself lately.").tier in ("high", "imminent")


def test_blank_keeps_offsets() -> None:
    assert engine._blank("abc def ghi", [(4, 7)]) == "abc     ghi"
    assert engine._blank("abc", []) == "abc"


def test_a_quiet_model_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(engine, "MODEL", hand_model({"lantern": 0.1}))
    for text in ("I want to end my life tonight, I have the pills here.",
                 "Where is my parcel? Order 1123.",
                 "this update is killing me lol"):
        assert screen(text) == screen_by_rules(text)


# ---------------------------------------------------------------- features and training


def test_features_are_words_and_word_pairs_with_spans() -> None:
    canonical = canonical_text("I won't be here, thanks! I'm not suicidal.")
    found = {f: canonical[s:e] for f, s, e in learned.features(canonical)}
    assert found["wont not_be"] == "wont be"  # a negator marks the words in its reach
    assert found["not_here thanks"] == "here, thanks"  # punctuation ends the reach; pairs cross it
    assert found["not_suicidal"] == "suicidal"
    assert [f for f, _, _ in learned.features(canonical) if " " not in f] == \
        learned.words_of(canonical)  # the fast path and the one with spans agree
    assert all(" " not in f or len(f.split()) == 2 for f in found)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_fast_word_list_matches_the_one_with_spans(language: str) -> None:
    for case in load_cases(language):
        canonical = canonical_text(case["text"])
        assert learned.words_of(canonical) == [
            f for f, _, _ in learned.features(canonical) if " " not in f], case["id"]


def test_negation_reaches_five_words_and_stops_at_punctuation() -> None:
    assert learned.words_of("i dont want to live like this anymore. cancel it") == [
        "i", "dont", "not_want", "not_to", "not_live", "not_like", "not_this", "anymore",
        "cancel", "it"]
    assert learned.words_of("je ne veux pas mourir, je suis fatigue") == [
        "je", "ne", "not_veux", "not_pas", "not_mourir", "je", "suis", "fatigue"]


_TOKENS = st.sampled_from(["not", "nie", "pas", "ne", "dont", "want", "to", "live", "a_b", "x",
                           "é", "ж", " ", "  ", ",", ".", "!", "\n", "-", "'", "3", "😭", "\t"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=40).map("".join))
def test_the_ascii_fast_path_agrees_with_the_regex_form(text: str) -> None:
    # words_of takes a translate/split path for ASCII text; the regex form is the reference.
    assert learned.words_of(text) == learned._words_by_regex(text)


def test_the_ascii_fast_path_keeps_negation_scopes() -> None:
    text = "nah, i will not do it. never; never say no to this one two three four five six"
    assert learned.words_of(text) == learned._words_by_regex(text)
    assert learned.words_of(text) == [
        "nah", "i", "will", "not", "not_do", "not_it", "never", "never", "not_say", "not_no",
        "not_to", "not_this", "not_one", "two", "three", "four", "five", "six"]


def test_training_imports_without_loading_the_model_it_writes() -> None:
    # Retraining must work while learned.json is missing or in an old format.
    import subprocess
    import sys

    probe = ("import sys, plugin.screening.train; "
             "sys.exit('plugin.screening.engine' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT).returncode == 0


def test_short_texts_need_a_surer_model(monkeypatch) -> None:
    model = hand_model({"lantern": 6.6})  # sigmoid(2.6) ≈ 0.93 ≥ 0.92; 0.8 threshold otherwise
    short = "the lantern"
    assert learned.opinion(model, short).raises_to == "high"
    weaker = hand_model({"lantern": 5.6})  # ≈ 0.83: enough for long texts only
    assert learned.opinion(weaker, short).raises_to == "none"
    long_text = "the lantern " + " ".join(["word"] * learned.SHORT_TEXT_WORDS)
    assert learned.opinion(weaker, long_text).raises_to == "high"


def test_long_texts_count_each_word_less() -> None:
    assert learned.length_scale(10) == 1.0
    assert learned.length_scale(learned.REFERENCE_WORDS * 4) == pytest.approx(0.5)


def test_fit_learns_a_separable_toy_problem() -> None:
    examples = [(frozenset({"alpha", "common"}), "high", False, 2)] * 20 + \
               [(frozenset({"beta", "common"}), "none", False, 2)] * 20
    bias, weights = train.fit(examples, [1] * 20 + [0] * 20, {"alpha", "beta", "common"})
    assert weights["alpha"] > 0 > weights["beta"]
    assert train._probability(bias, weights, examples[0]) > 0.7
    assert train._probability(bias, weights, examples[-1]) < 0.3


def test_lowest_threshold_flags_at_most_the_share_asked() -> None:
    scores = [i / 100 for i in range(100)]
    threshold = train._lowest_threshold(scores, 0.05)
    assert sum(s >= threshold for s in scores) <= 5
    assert train._lowest_threshold([0.1, 0.2], 0.5) == 0.5  # never below even odds


def test_training_is_deterministic(tmp_path) -> None:
    rows = []
    for path in train.TRAINING_FILES[:2]:
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:60]]
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    examples = train.load_examples([sample])
    first, _ = train.train(examples)
    second, _ = train.train(examples)
    assert train.render(first) == train.render(second)


def test_a_bad_training_line_names_its_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "tier": "none"}\n{"text": "x", "tier": "severe"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: unknown tier"):
        train.load_examples([bad])
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a JSON object"):
        train.load_examples([bad])
