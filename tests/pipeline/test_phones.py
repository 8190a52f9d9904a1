"""A phone the pipeline normalised is looked up (line type, region, time zone) as its E.164
form parses, without parsing it again."""
from __future__ import annotations

import phonenumbers
import pytest

from hub import mapping
from hub.mapping import normalise_phone, stored_phone

TYPED = ["8 916 123-45-67", "9161234567", "+7 (495) 123-45-67", "+7 800 555-35-35", "+44 20 7946 0958",
         "+39 06 1234 5678", "+39 312 345 6789", "+1 650 253 0000 ext. 12", "+225 07 12 34 56 78"]


@pytest.mark.parametrize("typed", TYPED)
def test_the_number_kept_from_normalising_is_what_its_e164_parses_to(typed, monkeypatch):
    monkeypatch.setattr(mapping, "parsed_phones", {})
    e164 = normalise_phone(typed, "RU")
    kept = mapping.parsed_phones[e164]
    assert stored_phone(e164) is kept  # not parsed again
    fresh = phonenumbers.parse(e164, None)
    assert kept == fresh
    assert phonenumbers.number_type(kept) == phonenumbers.number_type(fresh)
    assert phonenumbers.region_code_for_number(kept) == phonenumbers.region_code_for_number(fresh)


def test_a_stored_phone_that_does_not_parse_is_none_and_the_kept_numbers_stay_bounded(monkeypatch):
    monkeypatch.setattr(mapping, "parsed_phones", {})
    monkeypatch.setattr(mapping, "PARSED_KEPT", 3)
    assert stored_phone("not a phone") is None and stored_phone("") is None
    for number in range(10):
        stored_phone(f"+7916555{number:04d}")
    assert 0 < len(mapping.parsed_phones) <= 3
