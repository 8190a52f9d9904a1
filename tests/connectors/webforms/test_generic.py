"""The generic site form connector, one test per fixture.

Fixtures: ``tests/fixtures/webforms/generic/<event>__<variant>[.<charset>].<ext>``, each the raw
body exactly as sent, its Content-Type given by the name (tests/connectors/conftest.py): an
optional ``.<charset>`` before the extension adds ``; charset=<charset>``
(``submission__legacy_site.windows-1251.urlencoded``), and ``.xml`` is a type the hub refuses.
Other headers (Referer, X-Hub-Secret) are given by each test.
"""

from dataclasses import replace

import pytest

from connectors.base import BadRequest, Forbidden, Unauthorized, UnsupportedMediaType
from connectors.webforms import generic
from hub.mapping import load_mapping
from hub.pipeline.normalise import complete_source

SETTINGS = {"key": "landing", "honeypot": "website", "secret": None}
URL = "https://hub.example.com/hooks/forms/landing"


@pytest.fixture
def delivery_defaults():
    return {"folder": "webforms/generic", "url": URL}


@pytest.fixture
def parse_one(inbound):
    def parsed(fixture: str, settings: dict | None = None, **headers: str):
        [result] = generic.parse(inbound(fixture, **headers), settings or SETTINGS)
        return result

    return parsed


def test_module_declares_the_protocol():
    assert (generic.NAME, generic.KIND, generic.CHANNEL, generic.MAPPING) == (
        "generic", "forms", "form", "webforms/generic")
    assert generic.SECRETS == ("secret_env",)


def test_urlencoded_with_utm_hidden_fields_maps_lead_and_source(parse_one):
    parsed = parse_one("submission__utm_hidden_fields.urlencoded")
    assert (parsed.event_type, parsed.delivery_key, parsed.ignore) == ("submission", "sub-0001", None)
    assert parsed.fields["interest"] == "crm, telephony"
    assert "website" not in parsed.fields
    mapped = load_mapping(generic.MAPPING).apply(parsed.fields, "RU")
    assert mapped.lead == {"name": "Иван Иванов", "phone": "+79161234567",
                           "email": "ivan@example.com", "message": "Нужна CRM для отдела продаж"}
    assert mapped.source == {
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand",
        "utm_term": "crm для бизнеса", "utm_content": "{ad_id}",
        "gclid": "EAIaIQobChMIx7u3", "yclid": "2876125364712",
        "referrer": "https://yandex.ru/", "landing_page": "https://site.example/landing"}


def test_windows_1251_urlencoded_body_decodes_in_its_charset(parse_one):
    parsed = parse_one("submission__legacy_site.windows-1251.urlencoded")
    assert parsed.fields == {"name": "Иван", "phone": "+7 495 123-45-67",
                             "message": "Перезвоните после обеда"}


def test_windows_1251_multipart_body_decodes_in_its_charset(parse_one):
    parsed = parse_one("submission__legacy_site.windows-1251.multipart")
    assert parsed.fields == {"name": "Иван", "message": "Перезвоните"}


def test_utf8_is_the_default_and_undecodable_bytes_are_replaced(inbound):
    request = inbound("submission__legacy_site.windows-1251.urlencoded")
    request = replace(request, headers={"content-type": "application/x-www-form-urlencoded"})
    fields = generic.parse(request, SETTINGS)[0].fields
    assert fields["name"] == "\ufffd" * 4
    assert fields["phone"] == "+7 495 123-45-67"


def test_multipart_keeps_text_and_describes_files(parse_one):
    parsed = parse_one("submission__with_attachment.multipart")
    assert parsed.fields == {
        "name": "Ольга", "phone": "+7 912 000-11-22", "email": "olga@example.com",
        "message": "Бриф во вложении", "services": "crm, sms",
        "brief": "brief.pdf (application/pdf, 22 bytes)", "photo": ""}


def test_json_nested_utm_is_flattened_and_mapped(parse_one):
    parsed = parse_one("submission__nested_utm.json")
    assert parsed.delivery_key == "json-42"
    assert parsed.fields["utm.source"] == "google"
    assert parsed.fields["tags"] == "crm, sms"
    assert (parsed.fields["consent"], parsed.fields["cart.0.qty"]) == ("true", "2")
    mapped = load_mapping(generic.MAPPING).apply(parsed.fields, "RU")
    assert mapped.lead["phone"] == "+442079460958"
    assert mapped.source == {"utm_source": "google", "utm_medium": "cpc",
                             "utm_campaign": "spring_sale", "gclid": "Cj0KCQiA"}


def test_utm_inside_page_url_fills_blank_fields_only(parse_one):
    parsed = parse_one("submission__utm_in_page_url.urlencoded")
    mapped = load_mapping(generic.MAPPING).apply(parsed.fields, "RU")
    source = complete_source(dict(mapped.source))
    assert source["utm_source"] == "vk"  # the hidden field was blank
    assert source["utm_medium"] == "newsletter"  # the hidden field wins
    assert (source["utm_campaign"], source["yclid"]) == ("осень", "777")
    assert "ref" not in source


def test_attribution_is_read_from_the_urls_only_where_they_can_add_some():
    filled = {"utm_source": "form", "utm_medium": "cpc", "utm_campaign": "c", "utm_term": "t",
              "utm_content": "x", "gclid": "g", "yclid": "y"}
    page = "https://site.example/?utm_source=page&utm_term=page"
    assert complete_source({**filled, "landing_page": page}) == {**filled, "landing_page": page}
    assert complete_source({"landing_page": page, "utm_source": "form"}) == {
        "landing_page": page, "utm_source": "form", "utm_term": "page"}
    encoded = "https://site.example/?utm%5Fsource=encoded&yc%6Cid=7"  # names percent-encoded too
    assert complete_source({"landing_page": encoded}) == {
        "landing_page": encoded, "utm_source": "encoded", "yclid": "7"}
    assert complete_source({"referrer": "https://yandex.ru/search/?text=crm"}) == {
        "referrer": "https://yandex.ru/search/?text=crm"}


def test_referer_and_origin_headers_become_fields_and_feed_landing_page(parse_one):
    parsed = parse_one("submission__secret_field.urlencoded",
                       referer="https://site.example/promo?utm_source=ok", origin="https://site.example")
    assert parsed.fields["http_referer"] == "https://site.example/promo?utm_source=ok"
    assert parsed.fields["http_origin"] == "https://site.example"
    mapped = load_mapping(generic.MAPPING).apply(parsed.fields, "RU")
    page = "https://site.example/promo?utm_source=ok"
    assert mapped.source == {"landing_page": page, "referrer": page}
    assert complete_source(dict(mapped.source))["utm_source"] == "ok"


def test_unsupported_content_type_is_refused(inbound):
    with pytest.raises(UnsupportedMediaType) as error:
        generic.parse(inbound("submission__xml_body.xml"), SETTINGS)
    assert error.value.status == 415
    assert "content-type" in error.value.fields


def test_body_without_content_type_is_refused(inbound):
    request = inbound("submission__name_script.urlencoded")
    with pytest.raises(UnsupportedMediaType):
        generic.parse(replace(request, headers={}), SETTINGS)


def test_malformed_json_names_the_body(inbound):
    with pytest.raises(BadRequest) as error:
        generic.parse(inbound("submission__malformed.json"), SETTINGS)
    assert error.value.status == 400
    assert error.value.fields["body"].startswith("not JSON")


def test_json_that_is_not_an_object_names_the_body(inbound):
    with pytest.raises(BadRequest) as error:
        generic.parse(inbound("submission__not_an_object.json"), SETTINGS)
    assert error.value.fields == {"body": "expected an object, got list"}


def test_filled_honeypot_is_ignored(parse_one):
    parsed = parse_one("submission__honeypot_filled.urlencoded")
    assert parsed.ignore == "honeypot"
    assert parsed.fields["name"] == "Cheap pills"


def test_honeypot_can_be_switched_off(parse_one):
    parsed = parse_one("submission__honeypot_filled.urlencoded", {**SETTINGS, "honeypot": None})
    assert parsed.ignore is None
    assert parsed.fields["website"] == "http://spam.example/"


def test_missing_secret_is_unauthorized(inbound):
    with pytest.raises(Unauthorized) as error:
        generic.verify(inbound("submission__utm_hidden_fields.urlencoded"),
                       {**SETTINGS, "secret": "s3cret-value"})
    assert error.value.status == 401
    assert "_secret" in error.value.fields


@pytest.mark.parametrize("fixture, headers", [
    ("submission__utm_hidden_fields.urlencoded", {"x_hub_secret": "wrong"}),
    ("submission__secret_field.urlencoded", {}),
])
def test_wrong_secret_is_forbidden(inbound, fixture, headers):
    with pytest.raises(Forbidden) as error:
        generic.verify(inbound(fixture, **headers), {**SETTINGS, "secret": "another-value"})
    assert error.value.status == 403


def test_right_secret_in_header_passes(inbound):
    request = inbound("submission__utm_hidden_fields.urlencoded", x_hub_secret="s3cret-value")
    assert generic.verify(request, {**SETTINGS, "secret": "s3cret-value"}) is None


def test_right_secret_in_field_passes_and_leaves_the_fields(inbound):
    settings = {**SETTINGS, "secret": "s3cret-value"}
    request = inbound("submission__secret_field.urlencoded")
    assert generic.verify(request, settings) is None
    parsed = generic.parse(request, settings)[0]
    assert "_secret" not in parsed.fields
    assert parsed.fields == {"name": "Иван", "phone": "+79161234567"}


def test_no_secret_configured_checks_nothing(inbound):
    assert generic.verify(inbound("submission__utm_hidden_fields.urlencoded"), SETTINGS) is None


@pytest.mark.parametrize("fixture, name", [
    ("submission__name_script.urlencoded", "<script>alert('x')</script>"),
    ("submission__name_sql_injection.json", "'; DROP TABLE leads;--"),
    ("submission__name_emoji.multipart", "Аня 🌸👩\u200d💻"),
    ("submission__name_rtl.urlencoded", "محمد علي"),
])
def test_hostile_and_unusual_names_survive_unchanged(parse_one, fixture, name):
    parsed = parse_one(fixture)
    assert parsed.fields["name"] == name
    assert load_mapping(generic.MAPPING).apply(parsed.fields, "RU").lead["name"] == name


def test_rtl_message_and_nul_bytes(parse_one):
    rtl = parse_one("submission__name_rtl.urlencoded")
    assert rtl.fields["message"] == "שלום, אני רוצה הצעת מחיר"
    assert parse_one("submission__name_script.urlencoded").fields["message"] == "HelloWorld"


def test_reply_is_the_hubs_standard_answer(parse_one):
    assert generic.reply(parse_one("submission__utm_hidden_fields.urlencoded")) is None
