"""Takedown requests (rules/README.md, `content_reports`): someone else's content reported for
review or removal is a look-alike. The word model and the passage check do not raise it; the
rules still read the writer's own words."""

from __future__ import annotations

import pytest

from plugin.screening import engine, screen
from plugin.screening.engine import BOOK, canonical_text

REPORTS = {
    "en": "Hi, I'm reporting an account on your app that keeps posting pictures of cuts with "
          "captions like 'nobody has to know' and 'I'm so tired of being here'. My 13-year-old "
          "niece showed it to me because it scared her. She is fine, we talked about it. Please "
          "take down the posts and let me know when it's done.",
    "es": "Hola. En vuestra app hay una cuenta que sube fotos de cortes con frases tipo 'ya no "
          "aguanto más' y 'nadie me echaría de menos'. Mi hija de 14 años la vio y se asustó, "
          "ella está bien, lo hemos hablado. Os pido que la retiréis cuanto antes.",
    "nl": "Goedemiddag, ik wil een account melden dat filmpjes plaatst waarin zelfbeschadiging "
          "mooi wordt gemaakt. Mijn zoon van 12 zag het en schrok ervan, met hem is alles goed. "
          "Kunnen jullie die filmpjes verwijderen?",
    "de": "Hallo, ich möchte einen Account melden, der Bilder von Schnittwunden postet. Meine "
          "Tochter (13) hat es mir gezeigt, weil es ihr Angst gemacht hat. Ihr geht es gut.",
    "fr": "Bonjour, je signale un compte qui publie des photos de scarifications. Ma fille de 13 "
          "ans l'a vu et a eu peur, elle va bien, on en a parlé. Merci de retirer ces contenus.",
    "pt": "Olá, quero denunciar uma conta que posta fotos de cortes. A minha filha de 13 anos viu "
          "e ficou assustada, ela está bem, já conversámos. Por favor removam esse conteúdo.",
    "it": "Buongiorno, segnalo un account che pubblica foto di tagli. Mia figlia di 13 anni l'ha "
          "visto e si è spaventata, lei sta bene, ne abbiamo parlato. Vi chiedo di rimuovere "
          "questi contenuti.",
}


@pytest.mark.parametrize("language", sorted(REPORTS))
def test_a_takedown_request_is_recognised_and_not_flagged(language):
    text = REPORTS[language]
    assert BOOK.cue("content_reports").search(canonical_text(text)), language
    assert screen(text).tier in ("none", "concern")


def test_without_the_cue_the_word_model_would_raise_a_takedown_request(monkeypatch):
    # The captions quoted from the reported account can read as risk to the word model (session
    # 5's model raised the Spanish report; session 6's retrained one no longer does). Whatever
    # the model, a recognised report is not raised by it: shown with a model that always asks.
    from plugin.screening import learned

    always = learned.Opinion(at_risk=0.99, imminent=0.0, third_party=0.0, raises_to="high")
    monkeypatch.setattr(learned, "opinion", lambda model, canonical, **_: always)
    assert screen(REPORTS["es"]).tier == "concern"
    monkeypatch.setattr(engine, "_reports_content", lambda canonical, book: False)
    assert screen(REPORTS["es"]).tier == "high"


def test_the_writers_own_words_still_count_beside_a_report():
    text = ("I'm reporting an account that posts self-harm videos. Honestly, watching them I "
            "realised I want to kill myself too.")
    assert screen(text).tier in ("high", "imminent")


@pytest.mark.parametrize("text", [
    # Closing one's own account with finality is an arrangement, not a content report.
    "Please delete the account and give the data to my brother if he asks. "
    "I won't be here after this weekend.",
    "Quiero borrar la cuenta y que los datos se los deis a mi hermano si los pide. "
    "Después de este fin de semana ya no voy a estar.",
    # A farewell post someone else may take down later.
    "I've written my goodbye and put it on my story. Just want my sister to be able to take "
    "it down after I'm gone tonight.",
])
def test_closing_ones_own_account_or_a_goodbye_post_is_not_a_content_report(text):
    assert not BOOK.cue("content_reports").search(canonical_text(text))
