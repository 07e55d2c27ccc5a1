"""Behaviour of the screening engine on English helpdesk-style texts written for these tests.

Each test follows an item of issue 3's "What it must get right" list. The texts are invented
support tickets; method detail is deliberately absent.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.model import FLAGS, TIERS, Assessment, tier_rank
from plugin.screening import detect_language, rulebook, screen
from plugin.screening.normalise import normalise, normalise_mapped
from plugin.screening.scoring import tier_of


def rules_of(assessment: Assessment) -> set[str]:
    return {s.rule for s in assessment.signals if s.weight > 0}


def assert_well_formed(text: str, assessment: Assessment) -> None:
    assert assessment.tier in TIERS
    assert 0.0 <= assessment.score <= 1.0
    assert assessment.tier == tier_of(assessment.score)
    assert assessment.flags <= set(FLAGS)
    for signal in assessment.signals:
        assert 0 <= signal.start < signal.end <= len(text)
        assert signal.flags <= set(FLAGS)


# ------------------------------------------------------------------ idioms and look-alikes

@pytest.mark.parametrize("text", [
    "This update is killing me, the app crashes every time I open the camera.",
    "I'm dying to try the new flavour, when is it back in stock?",
    "My phone battery is dead after two hours, is that covered by the warranty?",
    "How do I kill the process that keeps the sync stuck at 99%?",
    "I could die of embarrassment, I sent the invoice to the wrong client.",
    "Shoot me an email when my order ships please.",
    "Do the suicide doors on the 1965 model come with new hinges?",
    "I'm done with your service, close my account.",
    "This is my last message before I escalate this to my bank.",
    "I won't need the account anymore, please cancel it at the end of the month.",
    "My pharmacy order of ibuprofen 400 mg arrived without the receipt.",
    "In the game my character keeps dying at level 3, is that a known bug?",
    "Please take down the video with self-harm content that someone posted on my page.",
    "The novel I ordered is about a man who wants to kill himself, but pages 40 to 60 are missing.",
    "Dead link on your pricing page, and the killer feature you advertise is not in my plan.",
    "The package arrived broken and the box was empty, I'm anxious to get a replacement.",
    "We are overwhelmed with orders and our staff is exhausted, please extend the deadline.",
    "Tonight at 8 pm I need the 800 mg ibuprofen refill delivered, I won't need the old prescription anymore.",
])
def test_idioms_and_lookalikes_are_none(text: str) -> None:
    assessment = screen(text)
    assert assessment.tier == "none", rules_of(assessment)
    assert_well_formed(text, assessment)


# ------------------------------------------------------------------ negation and reassurance

@pytest.mark.parametrize("text", [
    "I'm not suicidal, just really frustrated with this bill.",
    "Don't worry, I'm not going to hurt myself over a parcel, but I want my money back.",
    "I would never kill myself over a late delivery, I just want an answer today.",
])
def test_negation_and_reassurance_do_not_flag(text: str) -> None:
    assessment = screen(text)
    assert assessment.tier == "none"
    assert "negated" in assessment.flags


def test_negation_is_scoped_to_its_clause() -> None:
    text = "I'm not suicidal but some nights I wish I wouldn't wake up. Can you pause my payments?"
    assessment = screen(text)
    assert assessment.tier == "high"


def test_joking_after_the_fact_never_drops_below_concern() -> None:
    assessment = screen("this login page makes me want to kms lol")
    assert assessment.tier == "concern"
    assert "negated" in assessment.flags


# ------------------------------------------------------------------ past and recovered

@pytest.mark.parametrize("text", [
    "Years ago I tried to kill myself, now I'm fine. I only need a copy of my invoice.",
    "I used to self-harm when I was a teenager but I've been in recovery for years. Please delete my old posts.",
])
def test_past_and_recovered_is_at_most_concern(text: str) -> None:
    assessment = screen(text)
    assert assessment.tier == "concern"
    assert "historical" in assessment.flags


def test_current_ideation_overrides_an_earlier_recovery() -> None:
    text = "Years ago I tried to kill myself and got better. Lately I want to die again."
    assert tier_rank(screen(text).tier) >= tier_rank("high")


# ------------------------------------------------------------------ third party

def test_third_party_ideation_is_high_and_flagged() -> None:
    assessment = screen("My son says he wants to kill himself. Can you remove his card from my account?")
    assert assessment.tier == "high"
    assert "third_party" in assessment.flags


def test_third_party_imminent_danger_is_imminent() -> None:
    text = "My sister just texted me goodbye and she's not answering her phone. Please help, her account shows where she is."
    assessment = screen(text)
    assert assessment.tier == "imminent"
    assert "third_party" in assessment.flags


def test_bereavement_is_concern_not_third_party_risk() -> None:
    assessment = screen("My father died by suicide last spring, please close his account.")
    assert assessment.tier == "concern"


# ------------------------------------------------------------------ imminent

@pytest.mark.parametrize("text", [
    "I want to kill myself tonight. Please cancel the direct debit so my wife isn't charged.",
    "I've already taken all of my pills. I just wanted someone to know.",
    "Please make sure my mother gets the refund, I won't be around after tonight.",
    "This is my last message. Tell my kids I love them. Thank you for being kind on the phone.",
    "By the time you read this it will be over. Sorry for the trouble with the order.",
    "I've given my dog to my neighbour and cleared out the flat. Close the account, I won't be needing anything anymore. I'm so tired of everything.",
])
def test_plans_means_timing_final_arrangements_and_attempts_are_imminent(text: str) -> None:
    assert screen(text).tier == "imminent"


@pytest.mark.parametrize("text", [
    "Sometimes I wish I was dead. Anyway my invoice has the wrong address.",
    "Everyone would be better off without me. I keep ruining things, even this return.",
    "I've started cutting myself again and I can't afford the clinic bill.",
])
def test_ideation_and_self_harm_are_high(text: str) -> None:
    assert screen(text).tier == "high"


@pytest.mark.parametrize("text", [
    "I can't cope anymore, third overdraft fee this month and I haven't slept in days.",
    "I feel like such a burden to my family since I lost my job. Can I pause the loan?",
])
def test_distress_alone_is_concern(text: str) -> None:
    assert screen(text).tier == "concern"


# ------------------------------------------------------------------ text as it arrives

def test_html_is_stripped_and_offsets_point_into_the_html() -> None:
    html = "<div>Hello,</div><div><br></div><div>I&#39;m behind on payments and I want to kill myself.</div>"
    assessment = screen(html)
    assert assessment.tier == "high"
    phrases = [html[s.start:s.end] for s in assessment.signals if s.weight > 0]
    assert "kill myself" in phrases


def test_quoted_history_and_signature_are_not_screened() -> None:
    text = (
        "Thanks, the replacement arrived and works fine.\n\n"
        "On Tue, 4 Mar 2025 at 09:30, Support <help@shop.example> wrote:\n"
        "> We are sorry to hear you want to kill yourself over this.\n"
    )
    assert screen(text).tier == "none"
    quoted_lines = "All good now, thanks.\n> I want to die\n> the app is useless\n"
    assert screen(quoted_lines).tier == "none"
    outlook = ("Fixed, thank you.\n\n-----Original Message-----\nFrom: Support\n"
               "I want to end my life")
    assert screen(outlook).tier == "none"
    signature = "Where is my parcel?\n\nSent from my iPhone\nI want to die"
    assert screen(signature).tier == "none"


def test_new_words_above_the_quote_are_screened() -> None:
    text = ("I don't want to be alive anymore.\n\n"
            "On Tue, 4 Mar 2025 at 09:30, Support <help@shop.example> wrote:\n> Your refund is on its way.")
    assessment = screen(text)
    assert assessment.tier == "high"
    assert all(s.end <= text.index("On Tue") for s in assessment.signals)


@pytest.mark.parametrize("text, phrase", [
    ("honestly I want to k!ll mys3lf, your app deleted everything", "k!ll mys3lf"),
    ("thinking about su1c1de a lot lately, and now the refund bounced", "thinking about su1c1de"),
    ("I want to unalive myself, nothing works", "unalive myself"),
    ("I just want to diiieeee", "want to diiieeee"),
    ("I want to kill   myself", "kill   myself"),
    ("I'm sooo suicidal right now", "I'm sooo suicidal"),
])
def test_obfuscation_and_elongation_are_caught_with_original_spans(text: str, phrase: str) -> None:
    assessment = screen(text)
    assert tier_rank(assessment.tier) >= tier_rank("high")
    assert phrase in [text[s.start:s.end] for s in assessment.signals]


def test_accents_and_unicode_are_normalised() -> None:
    assert normalise("Ｉ’Ｍ ＳＯ ＴＩＲＥＤ") == "im so tired"
    assert normalise("Café Müller, straße") == "cafe muler, strase"
    assert screen("I’m not suicidal, just tired").tier == "none"


def test_signal_offsets_map_to_the_original_text() -> None:
    text = "Order #1234.\n\n  I   don’t want to live anymore…  please call."
    assessment = screen(text)
    assert assessment.signals
    for signal in assessment.signals:
        assert text[signal.start:signal.end].strip() == text[signal.start:signal.end]
        assert_well_formed(text, assessment)
    assert any(text[s.start:s.end].startswith("don’t want to live") for s in assessment.signals)


# ------------------------------------------------------------------ score, determinism, language

def test_score_rises_monotonically_with_severity() -> None:
    ladder = [
        "My parcel is late again.",
        "I'm so overwhelmed, I can't cope with these debts.",
        "I can't cope with these debts and sometimes I wish I was dead.",
        "I can't cope with these debts, sometimes I wish I was dead and I have a plan to end it tonight.",
    ]
    scores = [screen(text).score for text in ladder]
    tiers = [screen(text).tier for text in ladder]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert tiers == ["none", "concern", "high", "imminent"]


def test_more_evidence_never_lowers_the_score() -> None:
    base = "Sometimes I wish I was dead."
    more = base + " I feel like a burden to everyone and I can't cope anymore."
    assert screen(more).score >= screen(base).score


def test_same_input_same_output() -> None:
    text = "Please tell my kids I love them. This is my last message."
    assert screen(text) == screen(text)


def test_empty_and_blank_texts_are_none() -> None:
    assert screen("").tier == "none"
    assert screen("   \n ").score == 0.0


def test_language_is_detected_or_taken_from_the_locale() -> None:
    assert screen("Hi, my order never arrived and the tracking page is blank, can you check?").language == "en"
    assert detect_language(normalise("ok"), "en-GB") == "en"
    assert detect_language(normalise("12345")) == "und"


# ------------------------------------------------------------------ normalisation invariants

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab kK!1307'’-_.*\n\t  éÉßæ😭<>&;")), max_size=80))
def test_fast_and_mapped_normalisation_agree(text: str) -> None:
    canonical, origin = normalise_mapped(text)
    assert canonical == normalise(text)
    assert len(origin) == len(canonical) + 1
    assert origin == sorted(origin)
    assert all(0 <= i <= len(text) for i in origin)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_screens_to_a_well_formed_assessment(text: str) -> None:
    assert_well_formed(text, screen(text))


def test_mixed_language_and_unknown_locale_still_work() -> None:
    mixed = screen("Hi, my order never arrived y la verdad ya no quiero vivir.")
    assert mixed.tier == "high"
    assert any(s.language == "es" for s in mixed.signals)
    assert screen("Hi, my order never arrived y la verdad ya no quiero vivir.", locale="xx-YY").tier == "high"


# ------------------------------------------------------------------ scope cues stay in their language

@pytest.mark.parametrize("text, locale, minimum", [
    ("No domingo vou me matar.", "pt-BR", "high"),       # "no" = "on the", not an English "no"
    ("No, guardi, voglio morire.", "it-IT", "high"),     # an Italian "no," before the clause
])
def test_negators_of_another_language_do_not_cancel(text: str, locale: str, minimum: str) -> None:
    assessment = screen(text, locale=locale)
    assert tier_rank(assessment.tier) >= tier_rank(minimum)
    assert "negated" not in assessment.flags


def test_an_emoji_ends_the_clause_of_a_negator() -> None:
    assessment = screen("immer noch keine Erstattung 😭 ich weiß nicht mehr weiter", locale="de-DE")
    assert assessment.tier == "concern"
    assert any(s.weight > 0 and s.language == "de" for s in assessment.signals)


def test_a_negated_noun_does_not_cancel_a_statement_that_starts_with_its_subject() -> None:
    assessment = screen("immer noch keine Erstattung ich weiß nicht mehr weiter", locale="de-DE")
    assert assessment.tier == "concern"
    # ...but only function words between the negator and the subject keep it negated.
    assert screen("No es que me quiera suicidar ni nada, estoy furiosa con la factura.",
                  locale="es-ES").tier == "none"


def test_and_ends_an_english_negation() -> None:
    assert screen("I'm not angry at your agent and I want to die.").tier == "high"
    assert screen("I'm not suicidal, just angry about the invoice.").tier == "none"


def test_whose_words_is_decided_over_the_sentence() -> None:
    assessment = screen("My brother lost his job and keeps saying he wants to die, can we pause the loan?")
    assert assessment.tier == "high"
    assert "third_party" in assessment.flags


# ------------------------------------------------------------------ combinations and caps

def test_a_third_party_overdose_happening_now_is_imminent() -> None:
    assessment = screen("My husband took an overdose and we're at the hospital right now, please hold the order.")
    assert assessment.tier == "imminent"
    assert "third_party" in assessment.flags


def test_a_third_party_overdose_in_the_past_is_not_imminent() -> None:
    assessment = screen("My brother overdosed last year, he is doing better now. Please update his address.")
    assert tier_rank(assessment.tier) <= tier_rank("concern")


def test_a_bare_years_ago_dates_an_attempt_as_history() -> None:
    assessment = screen("Years ago I tried to end my life. I'm doing well now, I need an invoice copy.")
    assert assessment.tier == "concern"
    assert "historical" in assessment.flags


def test_a_past_time_frame_dates_only_its_own_clause() -> None:
    text = "I planned to kill myself two years ago and I'm planning to kill myself tonight."
    assert screen(text).tier == "imminent"


def test_two_preparatory_acts_with_a_time_frame_are_imminent() -> None:
    text = ("I've put my affairs in order and given my dog to my neighbour. "
            "Transfer my account to my sister, I won't need it after this weekend.")
    assert screen(text).tier == "imminent"
    # One act and an ordinary transfer is a warning sign, not an emergency.
    assert screen("I've put my affairs in order. Please transfer my account to my sister.").tier == "high"


def test_an_arrangement_inside_an_ideation_phrase_is_not_a_second_piece_of_evidence() -> None:
    assessment = screen("Sometimes I think everyone would be better off if I wasn't around anymore.")
    assert assessment.tier == "high"


def test_implicit_finality_with_an_arrangement_is_imminent_but_a_trip_is_not() -> None:
    assert screen("Send the remaining balance to my brother. I won't be here next week.").tier == "imminent"
    assert screen("Send the remaining balance to my brother, I won't be here next week "
                  "because I'm on holiday.").tier == "none"


# ------------------------------------------------------------------ contrast and stated intent

def test_a_contrast_word_ends_the_reach_of_a_reassurance() -> None:
    reassured = screen("I'm fine really, some nights I wish I wouldn't wake up.")
    contrasted = screen("I'm fine really, but some nights I wish I wouldn't wake up.")
    assert tier_rank(reassured.tier) < tier_rank("high")
    assert contrasted.tier == "high"


def test_a_negation_before_a_contrast_covers_only_its_own_clause() -> None:
    assert screen("Not suicidal or anything, but lately I keep thinking it'd be easier if I wasn't here.").tier == "high"
    assert screen("I'm not suicidal, just angry that the refund is late.").tier == "none"


@pytest.mark.parametrize("text", [
    "I'm going to do it tonight, the refund form is confusing.",
    "Fine, I'm going to do it myself then.",
    "I have everything I need for the install, I'll do it tonight.",
])
def test_a_stated_intent_alone_or_with_a_time_never_flags(text: str) -> None:
    assert screen(text).tier == "none"


def test_a_stated_intent_with_means_is_imminent_and_each_part_alone_is_not() -> None:
    means = "The pills are next to me."
    intent = "I'm going through with it this weekend."
    assert screen(means).tier == "none"
    assert screen(intent).tier == "none"
    assert screen(f"{means} {intent}").tier == "imminent"


def test_a_stated_intent_with_distress_is_high_and_imminent_with_a_time() -> None:
    assert screen("I can't take it anymore. I'm going to do it.").tier == "high"
    assert screen("I can't take it anymore. I'm going to do it tonight.").tier == "imminent"


def test_a_strong_farewell_with_a_time_frame_is_imminent() -> None:
    assert screen("I won't be here anymore.").tier != "imminent"
    assert screen("After tonight I won't be here anymore.").tier == "imminent"


def test_two_farewell_rules_reading_the_same_words_are_one_farewell() -> None:
    # Two German farewell rules both read "die letzte Mail, die ich jemals schreibe"; a goodbye
    # note needs two separate farewells, so this escalation threat is not imminent …
    threat = "Das ist die letzte Mail, die ich jemals schreibe, wenn das nicht geklärt wird."
    assessment = screen(threat)
    farewells = [s for s in assessment.signals if s.category == "farewell"]
    assert len({s.rule for s in farewells}) >= 2, "the example no longer exercises two rules"
    assert tier_rank(assessment.tier) < tier_rank("imminent")
    # … while two farewells in different words still make a goodbye note.
    assert screen("Das ist meine letzte Nachricht. Lebt wohl, ihr Lieben.").tier == "imminent"


def test_a_third_party_who_cannot_go_on_with_help_called_is_imminent() -> None:
    text = "My wife sent me a message saying she can't go on and I've called the police."
    assessment = screen(text)
    assert assessment.tier == "imminent" and "third_party" in assessment.flags
    assert screen("My wife can't go on holiday, I've called the travel agent.").tier == "none"


def test_a_negated_circumstance_does_not_cancel_a_longer_statement() -> None:
    # "going to do it" is negated inside the statement; the statement itself stands.
    text = "I don't know why I'm going to do it but I just want to die."
    assert tier_rank(screen(text).tier) >= tier_rank("high")


def test_role_intent_is_only_accepted_on_plan_method_means_rules() -> None:
    data = {
        "language": {"code": "xx", "name": "Test", "stopwords": ["zzq"]},
        "scope": {"contrast": ["but"]},
        "rules": [{"id": "xx.intent.do_it", "category": "distress", "weight": 0.2, "role": "intent",
                   "pattern": "do it", "match": ["do it"], "no_match": ["done"]}],
    }
    with pytest.raises(rulebook.RulebookError, match="role"):
        rulebook.parse_language(data, "xx.toml")
    data["rules"][0]["category"] = "plan_method_means"
    parsed = rulebook.parse_language(data, "xx.toml")
    assert parsed.rules[0].role == "intent" and parsed.scope["contrast"] == ("but",)


def test_a_third_party_apology_followed_by_silence_is_imminent() -> None:
    text = "My girlfriend texted me that she's sorry for everything and now she won't answer her phone."
    assessment = screen(text)
    assert assessment.tier == "imminent" and "third_party" in assessment.flags
    assert screen("My girlfriend texted me that she's sorry she missed the delivery.").tier == "none"


# ------------------------------------------------------------------ minority-language sentences

_LONG_ENGLISH_OPENING = ("Hello, I would like to cancel the subscription that I have with you because it is "
                         "too expensive for me and I do not use it. ")


@pytest.mark.parametrize(("sentence", "language"), [
    ("Je veux plus vivre.", "fr"),
    ("Sorry, je veux plus vivre, please cancel my plan.", "fr"),
    ("Ya no quiero vivir.", "es"),
    ("Ich will nicht mehr leben.", "de"),
])
def test_a_crisis_sentence_in_another_language_inside_an_english_ticket_is_screened(
        sentence: str, language: str) -> None:
    text = _LONG_ENGLISH_OPENING + sentence + " Thanks for the help with this."
    assessment = screen(text)
    assert assessment.language == "en"
    assert tier_rank(assessment.tier) >= tier_rank("high")
    assert any(s.language == language and s.weight > 0 for s in assessment.signals)
    assert_well_formed(text, assessment)


def test_a_sentence_language_needs_a_clear_lead_over_shared_stopwords() -> None:
    from plugin.screening.engine import BOOK, sentence_languages
    # "in", "a", "no" are stopwords of several languages: an English sentence stays English.
    assert sentence_languages(normalise("I cannot log in to my account. No idea why."), BOOK) == set()
    assert sentence_languages(normalise("Thanks. Je veux plus vivre."), BOOK) == {"fr"}


def test_a_negated_minority_language_sentence_uses_its_own_negators() -> None:
    text = _LONG_ENGLISH_OPENING + "Non, je ne veux pas mourir, je suis juste fatigué. Thanks."
    assert screen(text).tier == "none"


# ------------------------------------------------------------------ negation and a new clause after a comma

@pytest.mark.parametrize("text", [
    "Das Upgrade brauche ich nicht, für mich gibt es kein nächstes Jahr.",
    "Ya no quiero nada, nadie se daría cuenta si desapareciera.",
])
def test_a_negation_does_not_cross_a_comma_into_a_new_clause(text: str) -> None:
    assessment = screen(text)
    assert tier_rank(assessment.tier) >= tier_rank("high"), assessment.signals
    assert "negated" not in assessment.flags


@pytest.mark.parametrize("text", [
    "I'm not, you know, suicidal, just angry about the parcel.",
    "I don't want to, like, die over a parcel, I just want my refund.",
])
def test_a_negation_still_covers_a_short_aside_after_a_comma(text: str) -> None:
    assert screen(text).tier == "none"


# ------------------------------------------------------------------ the subject of a reported clause

@pytest.mark.parametrize("text", [
    "Minha filha me escreveu que é adeus pra sempre.",
    "Mi hija me escribió que esto es un adiós para siempre.",
    "Mia figlia mi ha scritto che è un addio per sempre.",
    "Ma fille m'a écrit que c'est un adieu pour toujours.",
])
def test_a_third_party_subject_wins_over_an_object_pronoun_before_a_complementiser(text: str) -> None:
    assessment = screen(text)
    assert tier_rank(assessment.tier) >= tier_rank("high")
    assert "third_party" in assessment.flags


@pytest.mark.parametrize("text", [
    "Minha filha sabe que eu vou dizer adeus pra sempre.",
    "Mi hija sabe que yo digo adiós para siempre.",
])
def test_a_reported_clause_with_its_own_first_person_subject_stays_first_person(text: str) -> None:
    assessment = screen(text)
    assert tier_rank(assessment.tier) >= tier_rank("high")
    assert "third_party" not in assessment.flags


# ------------------------------------------------------------------ German spelt without umlauts

def _german_rule(pattern: str, match: list[str]) -> rulebook.Rule:
    data = {
        "language": {"code": "xx", "name": "Test", "stopwords": ["zzq"]},
        "scope": {"contrast": ["aber"]},
        "rules": [{"id": "xx.farewell.umlaut", "category": "farewell", "weight": 0.5,
                   "pattern": pattern, "match": match, "no_match": ["ein neues Jahr"]}],
    }
    return rulebook.parse_language(data, "xx.toml").rules[0]


@pytest.mark.parametrize("text", [
    "Für mich gibt es kein nächstes Jahr.",
    "Fuer mich gibt es kein naechstes Jahr.",
    "FÜR MICH GIBT ES KEIN NÄCHSTES JAHR.",
    "fur mich gibt es kein nachstes jahr",
])
def test_a_rule_written_with_umlauts_matches_the_ascii_spelling_too(text: str) -> None:
    rule = _german_rule("für mich gibt es kein nächstes jahr", ["kein nächstes Jahr für mich"])
    found = rule.regex.search(normalise(text))
    assert found is not None
    canonical, origin = normalise_mapped(text)
    # The text keeps its own letters: the span maps back onto the customer's words exactly.
    start, end = origin[found.start()], origin[found.end() - 1] + 1
    assert text[start:end].lower().startswith(("für", "fuer", "fur"))
    assert text[start:end].lower().endswith("jahr")


def test_an_eszett_in_a_rule_matches_ss_and_an_umlaut_is_not_a_loose_wildcard() -> None:
    rule = _german_rule("mir ist alles zu groß und zu schwör", ["alles zu groß und zu schwör"])
    assert rule.regex.search(normalise("mir ist alles zu gross und zu schwoer")) is not None
    assert rule.regex.search(normalise("mir ist alles zu groß und zu schwör")) is not None
    assert rule.regex.search(normalise("mir ist alles zu gross und zu schwier")) is None


# ------------------------------------------------------------------ a fiction cue, then the writer


@pytest.mark.parametrize("text", [
    "Depuis que j'ai vu ce film, je pense à me tuer tous les jours.",
    "Ce n'est pas un roman, je veux vraiment mourir.",
    "Since I watched the film, I think about killing myself every day.",
    # Languages that drop the pronoun: the statement opens with the match.
    "Desde que vi esa película, pienso en matarme todos los días.",
    "No es una novela, quiero morirme de verdad.",
    "Dopo aver visto quel film, penso di uccidermi.",
    "Depois de ver aquele filme, penso em me matar todos os dias.",
])
def test_the_writers_own_statement_after_a_fiction_cue_counts(text) -> None:
    # The cue frames the clause before the comma; the writer then speaks for themself.
    assessment = screen(text)
    assert assessment.tier == "high" and "hypothetical" not in assessment.flags


@pytest.mark.parametrize("text", [
    "What if I killed myself?",
    "Dans mon roman, le héros se tue à la fin.",
    "Bug d'affichage : pendant le refrain, la ligne « j'ai envie de mourir ce soir » s'affiche en retard.",
    "In my novel the main character wants to kill himself.",
    "En mi novela, se mata al final.",
    "Voglio segnalare un video: il testo dice 'voglio morire' e lo usano per prendere in giro mia figlia.",
    "Nel film, il protagonista decide di uccidersi alla fine.",
    "Nel romanzo, alla fine si uccide.",
    "Preparo un reportaje sobre clientes que, en un chat, expresan ideas suicidas.",
])
def test_a_framed_or_quoted_statement_stays_hypothetical(text) -> None:
    assert tier_rank(screen(text).tier) < tier_rank("high")


# ------------------------------------------------------------------ a negation in a purpose clause


@pytest.mark.parametrize("text", [
    "Trabajo de noche para no pensar en matarme.",
    "Trabalho à noite pra não pensar em me matar.",
    "Lavoro di notte per non pensare di uccidermi.",
    "I work nights so I don't think about killing myself.",
    "Je travaille la nuit pour ne pas penser à me tuer.",
])
def test_a_thought_fended_off_in_a_purpose_clause_is_still_there(text) -> None:
    # "so as not to think about…": the negation is about the thinking, not the thought.
    assessment = screen(text)
    assert assessment.tier == "high" and "negated" not in assessment.flags


@pytest.mark.parametrize("text", [
    "No pienso en matarme, solo estoy harto.",
    "I don't think about killing myself, I'm just angry about the bill.",
    "I keep busy so I don't think about the refund.",
])
def test_a_plain_denial_still_negates(text) -> None:
    assert screen(text).tier == "none"
