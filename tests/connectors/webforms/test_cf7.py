"""The Contact Form 7 connector, one test per fixture.

Fixtures: ``tests/fixtures/webforms/cf7/<event>__<variant>.multipart``: multipart/form-data as
CF7's own script submits it.
"""

import pytest

from connectors.webforms import cf7
from hub.mapping import load_mapping

SETTINGS = {"key": "wordpress", "honeypot": "website", "secret": None}


@pytest.fixture
def delivery_defaults():
    return {"folder": "webforms/cf7", "url": "https://hub.example.com/hooks/forms/wordpress"}


def test_module_declares_the_protocol():
    assert (cf7.NAME, cf7.KIND, cf7.CHANNEL, cf7.MAPPING) == ("cf7", "forms", "form", "webforms/cf7")
    assert cf7.SECRETS == ("secret_env",)


def test_default_fields_drop_service_fields_and_map_to_a_lead(inbound):
    [parsed] = cf7.parse(inbound("submission__default_fields.multipart"), SETTINGS)
    assert (parsed.event_type, parsed.delivery_key, parsed.ignore) == ("submission", None, None)
    assert not [name for name in parsed.fields if name.startswith("_wpcf7")]
    assert parsed.fields["services[]"] == "CRM, Телефония"
    assert parsed.fields["your-subject"] == "Запрос цены"
    assert parsed.fields["file-cv"].startswith("ТЗ.docx (application/vnd.openxmlformats")
    mapped = load_mapping(cf7.MAPPING).apply(parsed.fields, "RU")
    assert mapped.lead == {
        "name": "Иван Петров", "phone": "+79161234567",
        "email": "ivan.petrov@example.com", "message": "Сколько стоит внедрение?"}
    assert mapped.source == {"utm_source": "google", "gclid": "Cj0KCQ-cf7"}
    assert cf7.reply(parsed) is None
