"""The Tilda webhook connector, one test per fixture.

Fixtures: ``tests/fixtures/webforms/tilda/<event>__<variant>.urlencoded``; Tilda always posts
urlencoded UTF-8.
"""

import pytest

from connectors.base import Reply, Unauthorized
from connectors.webforms import tilda
from hub.mapping import load_mapping

SETTINGS = {"key": "tilda-site", "honeypot": "website", "secret": None}


@pytest.fixture
def delivery_defaults():
    return {"folder": "webforms/tilda", "url": "https://hub.example.com/hooks/forms/tilda-site"}


def test_module_declares_the_protocol():
    assert (tilda.NAME, tilda.KIND, tilda.CHANNEL, tilda.MAPPING) == (
        "tilda", "forms", "form", "webforms/tilda")
    assert tilda.SECRETS == ("secret_env",)


def test_default_fields_map_to_a_lead_with_e164_phone(inbound):
    [parsed] = tilda.parse(inbound("submission__default_fields.urlencoded"), SETTINGS)
    assert (parsed.event_type, parsed.handshake) == ("submission", False)
    assert parsed.delivery_key == "467251:8442970"
    assert (parsed.fields["tranid"], parsed.fields["formid"]) == ("467251:8442970", "form712345678")
    assert (parsed.fields["Город"], parsed.fields["Checkbox"]) == ("Москва", "yes")
    mapped = load_mapping("webforms/tilda").apply(parsed.fields, "RU")
    assert mapped.lead == {"name": "Анна Смирнова", "phone": "+79161234567",
                           "email": "anna@example.com", "message": "Хочу CRM для салона"}
    assert mapped.source == {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand",
                             "yclid": "9876543210"}  # the empty gclid is absent
    assert tilda.reply(parsed) is None


def test_cookies_give_utm_and_analytics_ids_and_are_dropped(inbound):
    [parsed] = tilda.parse(inbound("submission__cookies.urlencoded"), SETTINGS)
    assert "COOKIES" not in parsed.fields
    assert not any("private-session-id" in value for value in parsed.fields.values())
    assert parsed.fields["utm_source"] == "vk_hidden"  # the hidden field beats the cookie
    assert parsed.fields["utm_medium"] == "social"  # a blank hidden field does not
    assert parsed.fields["utm_campaign"] == "осень"
    assert parsed.fields["utm_content"] == "banner 1"  # behind an "amp;" artefact
    assert parsed.fields["_ym_uid"] == "1700000000123456789"
    assert parsed.fields["_ga"] == "GA1.2.1234567890.1700000000"
    assert parsed.delivery_key == "467251:8442971"
    mapped = load_mapping("webforms/tilda").apply(parsed.fields, "RU")
    assert mapped.source["utm_campaign"] == "осень"
    assert mapped.lead["phone"] == "+79991112233"


def test_tildautm_tolerates_empty_segments_and_values_with_equals():
    raw = "utm_source%3Dvk%7C%7C%7C%7C%7C%7Camp%3Bamp%3Butm_term%3Da%253Db%7C%7C%7C"
    assert tilda.parse_tildautm(raw) == {"utm_source": "vk", "utm_term": "a=b"}


def test_connection_check_is_a_handshake_answered_ok(inbound):
    [parsed] = tilda.parse(inbound("test__connection_check.urlencoded"), SETTINGS)
    assert (parsed.event_type, parsed.handshake, parsed.delivery_key) == ("test", True, None)
    assert tilda.reply(parsed) == Reply(200, "ok")


def test_connection_check_passes_a_configured_secret(inbound):
    settings = {**SETTINGS, "secret": "s3cret-value"}
    assert tilda.verify(inbound("test__connection_check.urlencoded"), settings) is None
    with pytest.raises(Unauthorized):
        tilda.verify(inbound("submission__default_fields.urlencoded"), settings)
