import pytest

from hub.pipeline.segments import count_segments


@pytest.mark.parametrize("text, expected", [
    ("a" * 160, ("GSM-7", 1)),
    ("a" * 161, ("GSM-7", 2)),
    ("a" * 306, ("GSM-7", 2)),  # 2 × 153
    ("a" * 307, ("GSM-7", 3)),
    ("Я" * 70, ("UCS-2", 1)),
    ("Я" * 71, ("UCS-2", 2)),
    ("Я" * 134, ("UCS-2", 2)),  # 2 × 67
    ("Я" * 135, ("UCS-2", 3)),
    ("", ("GSM-7", 1)),
])
def test_single_and_multipart_limits(text, expected):
    assert count_segments(text) == expected


def test_cyrillic_text_is_ucs2():
    assert count_segments("Ваша заявка принята. Номер 42") == ("UCS-2", 1)


def test_extension_characters_take_two_septets():
    assert count_segments("€" * 80) == ("GSM-7", 1)
    assert count_segments("€" * 80 + "a") == ("GSM-7", 2)
    assert count_segments("^" * 80) == ("GSM-7", 1)
    assert count_segments("a" * 159 + "^") == ("GSM-7", 2)


def test_an_escape_pair_is_not_split_across_parts():
    # 152 septets, then "€" (2) would straddle the 153-septet boundary: it opens part 2.
    assert count_segments("a" * 152 + "€" + "a" * 152) == ("GSM-7", 3)
    assert count_segments("a" * 151 + "€" + "a" * 153) == ("GSM-7", 2)


def test_emoji_take_two_utf16_units():
    assert count_segments("😀" * 35) == ("UCS-2", 1)
    assert count_segments("😀" * 35 + "a") == ("UCS-2", 2)
    assert count_segments("a" * 66 + "😀" + "a" * 66) == ("UCS-2", 3)  # the pair opens part 2


def test_one_non_gsm_character_switches_the_whole_text():
    assert count_segments("a" * 69 + "ç") == ("UCS-2", 1)  # ç is not in GSM-7 (Ç is)
    assert count_segments("a" * 70 + "ç") == ("UCS-2", 2)
    assert count_segments("Ça va? @£$¥") == ("GSM-7", 1)
