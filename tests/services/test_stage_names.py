"""Stage-name suggestions: a measured corpus of real names, and the rules behind them."""

import csv
import io
import re
from collections import Counter
from pathlib import Path

import pytest

from chalicelib.services import stage_vocabulary
from chalicelib.services.pipelines import DEFAULT_AUTO_APPLY_CONFIDENCE
from chalicelib.services.stage_names import CLOSED, IN_PROGRESS, NEW, STATUSES, from_name, skeleton, suggest

CORPUS = Path(__file__).parent.parent / "data" / "stage_names.csv"
REGULAR_ID = 58141899  # corpus names are judged as regular stages: ids 142/143 and type 1 decide on their own
TARGET_ACCURACY = 0.95

REAL_STAGE_NAMES = [
    # Russian
    ("Первичный контакт", NEW),
    ("Новая заявка", NEW),
    ("Неразобранное", NEW),
    ("Входящие", NEW),
    ("Переговоры", IN_PROGRESS),
    ("Принимают решение", IN_PROGRESS),
    ("Согласование договора", IN_PROGRESS),
    ("Показ квартиры", IN_PROGRESS),
    ("Ожидание оплаты", IN_PROGRESS),
    ("Квалификация", IN_PROGRESS),
    ("Успешно реализовано", CLOSED),
    ("Закрыто и не реализовано", CLOSED),
    ("Отказ", CLOSED),
    ("Оплачено", CLOSED),
    # Ukrainian
    ("Первинний контакт", NEW),
    ("Нова заявка", NEW),
    ("Нерозібране", NEW),
    ("Переговори", IN_PROGRESS),
    ("Ухвалюють рішення", IN_PROGRESS),
    ("Узгодження договору", IN_PROGRESS),
    ("Перегляд об'єкта", IN_PROGRESS),
    ("Успішно реалізовано", CLOSED),
    ("Закрито і не реалізовано", CLOSED),
    ("Відмова", CLOSED),
    # English
    ("Initial contact", NEW),
    ("Incoming leads", NEW),
    ("New lead", NEW),
    ("Negotiation", IN_PROGRESS),
    ("Decision making", IN_PROGRESS),
    ("Contract discussion", IN_PROGRESS),
    ("Viewing scheduled", IN_PROGRESS),
    ("Proposal sent", IN_PROGRESS),
    ("Closed - won", CLOSED),
    ("Closed - lost", CLOSED),
    ("Won", CLOSED),
    ("Lost", CLOSED),
    ("Cancelled", CLOSED),
]


@pytest.mark.parametrize("name,expected", REAL_STAGE_NAMES)
def test_real_stage_names_get_the_expected_status(name, expected):
    suggestion = suggest(58141807, stage_type=0, name=name, position=2)
    assert suggestion.status == expected
    assert 0.75 <= suggestion.confidence < 1.0


def test_the_table_covers_at_least_thirty_names_in_three_languages():
    assert len(REAL_STAGE_NAMES) >= 30


@pytest.mark.parametrize("name", ["ПЕРЕГОВОРЫ!!!", "  переговоры ", "Пepeгoвopы", "переговоры."])
def test_case_punctuation_and_latin_lookalikes_are_normalised(name):
    # "Пepeгoвopы" above is typed with Latin e, p, o
    assert from_name(name).status == IN_PROGRESS


def test_cyrillic_lookalikes_in_an_english_name_still_match():
    assert from_name("Nеgotiаtion").status == IN_PROGRESS  # Cyrillic е and а


def test_system_statuses_are_closed_with_full_confidence_whatever_their_name():
    assert suggest(142, stage_type=0, name="ОПЛАЧНО", position=None) == suggest(
        142, stage_type=0, name="Closed - won", position=None
    )
    assert suggest(143, stage_type=0, name="Что угодно", position=None).status == CLOSED
    assert suggest(143, stage_type=0, name="", position=None).confidence == 1.0


def test_unsorted_type_is_new():
    suggestion = suggest(58141803, stage_type=1, name="Something custom", position=None)
    assert suggestion.status == NEW and suggestion.confidence == 0.95


def test_unknown_names_fall_back_to_position_with_low_confidence():
    first = suggest(1, stage_type=0, name="Ква-ква", position=0)
    later = suggest(2, stage_type=0, name="Zzz", position=3)
    assert (first.status, later.status) == (NEW, IN_PROGRESS)
    assert first.confidence < 0.5 and later.confidence < 0.5


def test_a_negated_won_word_is_lost_and_says_so():
    suggestion = from_name("Закрыто и не реализовано")
    assert suggestion.status == CLOSED
    assert "(lost)" in suggestion.reason


def test_word_stems_match_only_at_a_word_start():
    assert from_name("Renewal") is None  # contains "new", but not as a word


def test_skeleton_folds_scripts_together():
    assert skeleton("Обработка, Е-mail") == skeleton("oбpaбoткa e mail")


# --- the corpus --------------------------------------------------------------------------------


def corpus_rows() -> list[dict]:
    text = CORPUS.read_text(encoding="utf-8")
    return list(
        csv.DictReader(
            io.StringIO("".join(line for line in text.splitlines(keepends=True) if not line.startswith("#")))
        )
    )


def corpus_source_keys() -> set[str]:
    text = CORPUS.read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^#   (\S+)\s", text, flags=re.MULTILINE)}


def test_the_corpus_holds_at_least_150_sourced_names_in_seven_languages():
    rows = corpus_rows()
    assert len(rows) >= 150
    assert set(Counter(r["lang"] for r in rows)) == {"ru", "uk", "en", "es", "pt", "tr", "id"}
    assert {r["expected"] for r in rows} <= set(STATUSES)
    assert {r["kind"] for r in rows} <= {"incoming", "first", "middle", "won", "lost"}
    assert {r["source"] for r in rows} <= corpus_source_keys()  # every row names a described source
    names = Counter((r["lang"], skeleton(r["name"])) for r in rows)
    assert [name for name, count in names.items() if count > 1] == []


def test_suggestions_are_right_on_the_corpus_whenever_auto_apply_would_act():
    rows = corpus_rows()
    judged = [(r, suggest(REGULAR_ID, stage_type=0, name=r["name"], position=int(r["position"]))) for r in rows]
    confident = [(r, s) for r, s in judged if s.confidence >= DEFAULT_AUTO_APPLY_CONFIDENCE]
    wrong = [(r, s) for r, s in confident if s.status != r["expected"]]
    coverage = len(confident) / len(rows)
    accuracy = 1 - len(wrong) / len(confident) if confident else 0.0
    report = (
        f"stage-name corpus: {len(rows)} names, coverage {coverage:.1%} at confidence >= "
        f"{DEFAULT_AUTO_APPLY_CONFIDENCE}, accuracy {accuracy:.1%} among those"
        + "".join(
            f"\n  wrong: {r['name']!r} ({r['lang']}, {r['kind']}) expected {r['expected']}, "
            f"got {s.status} {s.confidence} ({s.reason})"
            for r, s in wrong
        )
    )
    print(report)
    assert accuracy >= TARGET_ACCURACY, report
    assert [r["name"] for r, _ in wrong if r["kind"] != "middle"] == [], report


@pytest.mark.parametrize("lang", ["ru", "uk", "en", "es", "pt", "tr", "id"])
def test_every_language_has_confident_suggestions(lang):
    rows = [r for r in corpus_rows() if r["lang"] == lang]
    confident = [
        r
        for r in rows
        if suggest(REGULAR_ID, stage_type=0, name=r["name"], position=int(r["position"])).confidence
        >= DEFAULT_AUTO_APPLY_CONFIDENCE
    ]
    assert len(confident) >= len(rows) // 2


# --- the rules ---------------------------------------------------------------------------------


def test_each_stem_belongs_to_one_concept():
    owners: dict[str, set[str]] = {}
    for concept in stage_vocabulary.CONCEPTS:
        for stem in concept.stems:
            owners.setdefault(skeleton(stem), set()).add(concept.name)
            assert " " not in skeleton(stem), stem  # a stem is one word, not a phrase
    assert {stem: names for stem, names in owners.items() if len(names) > 1} == {}


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Переговоры с клиентом", IN_PROGRESS),  # inflected forms share the stem
        ("Negociações", IN_PROGRESS),  # accents dropped
        ("NEGOCIACAO", IN_PROGRESS),
        ("Pazarlık", IN_PROGRESS),  # Turkish dotless ı
        ("İptal", CLOSED),  # Turkish dotted İ
    ],
)
def test_stems_match_inflections_accents_and_case(name, expected):
    assert from_name(name).status == expected


def test_a_short_stem_takes_only_a_short_ending():
    assert from_name("News") is not None  # "new" + 1 letter
    assert from_name("Newsletter") is None  # "new" + 7 letters is another word


def test_the_longest_stem_wins():
    assert "(lost)" in from_name("Başarısız").reason  # "başarısız" (failed), not "başarı" (success)
    assert from_name("Contacted").reason == "name says 'contacted…' (handled)"  # not the weaker "contact"


@pytest.mark.parametrize(
    "name,expected,label",
    [
        ("Не реализовано", CLOSED, "lost"),  # ru: not realized
        ("Не реалізовано", CLOSED, "lost"),  # uk
        ("Не оплачено", IN_PROGRESS, "not paid"),  # ru: not paid yet
        ("No pagado", IN_PROGRESS, "not paid"),  # es
        ("Não qualificado", CLOSED, "lost"),  # pt
        ("Not interested", CLOSED, "lost"),  # en
        ("Unqualified", CLOSED, "lost"),  # en, glued
        ("Descalificado", CLOSED, "lost"),  # es, glued
        ("Нецелевой", CLOSED, "lost"),  # ru, glued
        ("Нерозібране", NEW, "not handled"),  # uk, glued: nobody took it yet
        ("Belum Dihubungi", NEW, "not handled"),  # id: not contacted yet
        ("Tidak berhasil", CLOSED, "lost"),  # id: not successful
        ("Uygun değil", CLOSED, "lost"),  # tr: negation after the word
    ],
)
def test_negation_turns_a_concept_into_its_opposite(name, expected, label):
    suggestion = from_name(name)
    assert suggestion.status == expected
    assert f"({label})" in suggestion.reason


@pytest.mark.parametrize(
    "name",
    [
        "Ожидание оплаты",
        "Очікуємо оплату",
        "Waiting for Payment",
        "Pago confirmado/esperando documentos",
        "Оплачено частично",
        "Ödeme Bekleniyor",
        "Menunggu Pembayaran",
        "проверить оплату",
    ],
)
def test_a_pending_step_keeps_money_words_in_progress(name):
    assert from_name(name).status == IN_PROGRESS


@pytest.mark.parametrize("name", ["Оплата получена", "Оплата отримана", "Payment received", "Pagamento recebido"])
def test_a_received_payment_is_won(name):
    assert from_name(name).status == CLOSED


@pytest.mark.parametrize(
    "name",
    [
        "Первичный контакт",
        "Первинний контакт",
        "Перший контакт",
        "Initial contact",
        "First call",
        "Contacto inicial",
        "Primer llamada",
        "Contato inicial",
        "İlk temas",
        "Kontak Awal",
        "Kontak pertama",
    ],
)
def test_first_contact_is_new_in_every_language(name):
    suggestion = suggest(REGULAR_ID, stage_type=0, name=name, position=0)
    assert suggestion.status == NEW and suggestion.confidence >= DEFAULT_AUTO_APPLY_CONFIDENCE


@pytest.mark.parametrize(
    "name,lang",
    [
        ("Успешно реализовано", "ru"),
        ("Успішна угода", "uk"),
        ("Closed - won", "en"),
        ("Logrado con éxito", "es"),
        ("Fechado - ganho", "pt"),
        ("Kazanıldı", "tr"),
        ("Berhasil", "id"),
        ("Закрыто и не реализовано", "ru"),
        ("Відмова", "uk"),
        ("Closed - lost", "en"),
        ("Venta perdida", "es"),
        ("Fechado - perdido", "pt"),
        ("Kaybedildi", "tr"),
        ("Gagal", "id"),
    ],
)
def test_won_and_lost_are_closed_in_every_language(name, lang):
    suggestion = suggest(REGULAR_ID, stage_type=0, name=name, position=5)
    assert suggestion.status == CLOSED and suggestion.confidence >= DEFAULT_AUTO_APPLY_CONFIDENCE, lang


def test_an_in_progress_word_on_the_first_stage_is_left_to_a_person():
    first = suggest(REGULAR_ID, stage_type=0, name="Квалификация", position=0)
    later = suggest(REGULAR_ID, stage_type=0, name="Квалификация", position=2)
    assert first.status == later.status == IN_PROGRESS
    assert first.confidence < DEFAULT_AUTO_APPLY_CONFIDENCE <= later.confidence


def test_a_weak_word_is_confident_only_where_the_position_agrees():
    assert suggest(REGULAR_ID, stage_type=0, name="Лид", position=0).confidence >= DEFAULT_AUTO_APPLY_CONFIDENCE
    assert suggest(REGULAR_ID, stage_type=0, name="Лид", position=3).confidence < DEFAULT_AUTO_APPLY_CONFIDENCE


def test_a_tie_between_new_and_in_progress_goes_to_the_position_without_confidence():
    first = suggest(REGULAR_ID, stage_type=0, name="Lead caliente", position=0)
    later = suggest(REGULAR_ID, stage_type=0, name="Lead caliente", position=2)
    assert (first.status, later.status) == (NEW, IN_PROGRESS)
    assert max(first.confidence, later.confidence) < DEFAULT_AUTO_APPLY_CONFIDENCE
