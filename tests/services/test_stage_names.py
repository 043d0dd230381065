"""Stage-name suggestions in Russian, Ukrainian and English."""
import pytest

from chalicelib.services.stage_names import CLOSED, IN_PROGRESS, NEW, from_name, skeleton, suggest

REAL_STAGE_NAMES = [
    # Russian
    ("Первичный контакт", NEW), ("Новая заявка", NEW), ("Неразобранное", NEW), ("Входящие", NEW),
    ("Переговоры", IN_PROGRESS), ("Принимают решение", IN_PROGRESS), ("Согласование договора", IN_PROGRESS),
    ("Показ квартиры", IN_PROGRESS), ("Ожидание оплаты", IN_PROGRESS), ("Квалификация", IN_PROGRESS),
    ("Успешно реализовано", CLOSED), ("Закрыто и не реализовано", CLOSED), ("Отказ", CLOSED),
    ("Оплачено", CLOSED),
    # Ukrainian
    ("Первинний контакт", NEW), ("Нова заявка", NEW), ("Нерозібране", NEW),
    ("Переговори", IN_PROGRESS), ("Ухвалюють рішення", IN_PROGRESS), ("Узгодження договору", IN_PROGRESS),
    ("Перегляд об'єкта", IN_PROGRESS), ("Успішно реалізовано", CLOSED), ("Закрито і не реалізовано", CLOSED),
    ("Відмова", CLOSED),
    # English
    ("Initial contact", NEW), ("Incoming leads", NEW), ("New lead", NEW), ("Negotiation", IN_PROGRESS),
    ("Decision making", IN_PROGRESS), ("Contract discussion", IN_PROGRESS), ("Viewing scheduled", IN_PROGRESS),
    ("Proposal sent", IN_PROGRESS), ("Closed - won", CLOSED), ("Closed - lost", CLOSED), ("Won", CLOSED),
    ("Lost", CLOSED), ("Cancelled", CLOSED),
]


@pytest.mark.parametrize("name,expected", REAL_STAGE_NAMES)
def test_real_stage_names_get_the_expected_status(name, expected):
    suggestion = suggest(58141807, 0, name, position=2)
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
    assert suggest(142, 0, "ОПЛАЧНО", None) == suggest(142, 0, "Closed - won", None)
    assert suggest(143, 0, "Что угодно", None).status == CLOSED
    assert suggest(143, 0, "", None).confidence == 1.0


def test_unsorted_type_is_new():
    suggestion = suggest(58141803, 1, "Something custom", None)
    assert suggestion.status == NEW and suggestion.confidence == 0.95


def test_unknown_names_fall_back_to_position_with_low_confidence():
    first = suggest(1, 0, "Ква-ква", position=0)
    later = suggest(2, 0, "Zzz", position=3)
    assert (first.status, later.status) == (NEW, IN_PROGRESS)
    assert first.confidence < 0.5 and later.confidence < 0.5


def test_a_phrase_beats_a_word_it_contains():
    assert from_name("Закрыто и не реализовано").reason == "name matches 'закрыто и не реализовано'"


def test_word_stems_match_only_at_a_word_start():
    assert from_name("Renewal") is None  # contains "new", but not as a word


def test_skeleton_folds_scripts_together():
    assert skeleton("Обработка, Е-mail") == skeleton("oбpaбoткa e mail")
