"""The IMAP provider module's parse, one test per fixture (tests/fixtures/mail/<case>__<variant>.eml,
synthetic, CRLF)."""
from __future__ import annotations

import hashlib

import pytest

from connectors.base import BadRequest, Inbound
from connectors.mail import imap
from connectors.mail.contact import form_fields, is_form
from connectors.mail.parse import codec, decode_bytes, header_text, html_to_text
from hub.mapping import load_mapping
from hub.pipeline.normalise import complete_source

from tests.helpers import FIXTURES, MAILBOX_SETTINGS, fixture_bytes


def mapped(parsed):
    return load_mapping(imap.MAPPING).apply(parsed.fields, "RU")


def test_module_declares_the_protocol(parse):
    assert (imap.NAME, imap.KIND, imap.CHANNEL, imap.MAPPING) == ("imap", "mail", "mail", "mail/imap")
    assert imap.SECRETS == ("password_env",)
    assert imap.verify(Inbound(method="IMAP", url=""), MAILBOX_SETTINGS) is None
    assert imap.reply(parse("encoding__base64.eml")) is None


def test_every_fixture_has_crlf_line_endings():
    for path in (FIXTURES / "mail").glob("*.eml"):
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), path.name


def test_windows_1251_8bit_body_and_b_encoded_headers(parse):
    parsed = parse("cyrillic__windows1251_8bit.eml")
    assert parsed.fields["from_name"] == "Иван Петров"
    assert parsed.fields["subject"] == "Заявка на подключение CRM"
    assert "Хотим подключить CRM для отдела продаж" in parsed.fields["text"]
    assert parsed.fields["date"] == "2026-11-23T10:00:00+03:00"
    assert parsed.delivery_key == "mail/20261123100000.4A1B2C3D@example.ru"
    assert parsed.extra == {"touch_key": "mail:20261123100000.4A1B2C3D@example.ru", "thread": []}
    assert mapped(parsed).lead == {"name": "Иван Петров", "email": "ivan.petrov@example.ru",
                                   "phone": "+79161234567", "message": parsed.fields["text"]}
    assert mapped(parsed).details == {"message_id": "20261123100000.4A1B2C3D@example.ru",
                                      "subject": "Заявка на подключение CRM", "text": parsed.fields["text"]}
    assert parsed.ignore is None


def test_koi8r_quoted_printable_body_and_q_encoded_headers(parse):
    parsed = parse("cyrillic__koi8r_qp.eml")
    assert parsed.fields["from_name"] == "Сергей Кузнецов"
    assert parsed.fields["subject"] == "Вопрос по внедрению"  # adjacent encoded-words joined
    assert "Интересует ваше предложение по внедрению" in parsed.fields["text"]
    assert parsed.fields["phone"] == "+79265551234"


def test_utf8_alias_charset(parse):
    parsed = parse("charset__utf8_alias.eml")
    assert (parsed.fields["from_name"], parsed.fields["subject"]) == ("Ольга Смирнова", "Коммерческое предложение")
    assert parsed.fields["text"].startswith("Пришлите, пожалуйста")
    assert parsed.fields["phone"] == "+79037654321"


def test_8bit_utf8_mislabeled_us_ascii_and_raw_8bit_subject(parse):
    parsed = parse("charset__mislabeled_us_ascii.eml")
    assert parsed.fields["subject"] == "Нужна консультация"
    assert parsed.fields["text"].startswith("Добрый день, нужна консультация")
    assert parsed.fields["phone"] == "+79150001122"


def test_html_only_becomes_clean_text_without_script_style_or_hidden_text(parse):
    parsed = parse("html__only.eml")
    text = parsed.fields["text"]
    assert "Хотим заказать демонстрацию системы «для» нашего офиса." in text
    assert 'Компания: ООО "Вектор"' in text
    for hidden in ("color: #333", "var phone", "Скрытый прехедер", "hidden by attribute", "Письмо"):
        assert hidden not in text
    assert parsed.fields["phone"] == "+79162223344"  # not the script's nor the hidden one


def test_base64_text_body(parse):
    parsed = parse("encoding__base64.eml")
    assert parsed.fields["subject"] == "Счёт на оплату"
    assert parsed.fields["text"].startswith("Выставьте, пожалуйста, счёт")
    assert parsed.fields["phone"] == "+79173334455"


def test_attachments_are_recorded_not_inlined_rfc2231_name_decoded(parse):
    parsed = parse("attachments__rfc2231_filename.eml")
    assert parsed.fields["attachments"] == ("Техническое задание.pdf (application/pdf, 1021 bytes); "
                                            "logo.png (image/png, 208 bytes)")
    assert parsed.fields["text"] == ("Добрый день! Во вложении реквизиты и техническое задание.\n"
                                     "Елена, тел. +7 916 444-55-66")  # the plain alternative only
    assert "%PDF" not in parsed.fields["text"]


def test_forward_as_rfc822_attachment_gives_the_original_sender(parse):
    parsed = parse("forward__rfc822_attachment.eml")
    assert (parsed.fields["from_name"], parsed.fields["from_email"]) == ("Николай Егоров", "nikolay@example.org")
    assert parsed.fields["forwarded_by"] == "anna@example.com"
    assert parsed.fields["phone"] == "+79217778899"  # not the forwarding manager's number
    assert parsed.fields["text"].startswith("Анна, добрый вечер!")


def test_inline_forward_block_gives_the_original_sender(parse):
    parsed = parse("forward__inline_yandex.eml")
    assert (parsed.fields["from_name"], parsed.fields["from_email"]) == ("Татьяна Белова", "t.belova@example.net")
    assert parsed.fields["phone"] == "+79123456789"
    assert parsed.fields["text"] == "Добрый день! Интересует интеграция с телефонией.\nТатьяна, +7 912 345-67-89"


def test_site_form_from_no_reply_uses_reply_to_and_body_lines(parse):
    parsed = parse("form__noreply_reply_to.eml")
    lead = mapped(parsed).lead
    assert (lead["name"], lead["email"], lead["phone"]) == ("Кирилл Зайцев", "kirill@example.org", "+79261112233")


def test_site_form_from_own_address_with_english_labels_and_plus_tag(parse):
    parsed = parse("form__own_address_english.eml")
    lead, source = mapped(parsed).lead, mapped(parsed).source
    assert (lead["name"], lead["email"], lead["phone"]) == ("John Smith", "john.smith@example.co.uk", "+442079460958")
    assert source == {"utm_source": "google"}


def test_site_form_from_any_sender_beats_its_display_name_and_reads_the_page_url(parse):
    parsed = parse("form__arbitrary_sender_english.eml")
    lead, source = mapped(parsed).lead, mapped(parsed).source
    assert (lead["name"], lead["email"], lead["phone"]) == ("Laura Jones", "laura.jones@example.co.uk", "+442079460321")
    assert parsed.fields["relayed_by"] == "leads@forms-service.example.net"  # the mailer, not the client
    page = "https://site.example.org/pricing?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=Cj0KCQiA2"
    assert source == {"landing_page": page}
    assert complete_source(source) == {"landing_page": page, "utm_source": "google", "utm_medium": "cpc",
                                       "utm_campaign": "brand", "gclid": "Cj0KCQiA2"}


@pytest.mark.parametrize("text, expected", [
    ("Имя: Иван\nТелефон: +7 916 111-22-33", True),
    ("Телефон: +7 916 111-22-33\nСтраница: https://site.example/?utm_source=vk", True),
    ("С уважением, Иван\nТел.: +7 916 111-22-33\nE-mail: ivan@example.org", False),  # a signature
    ("Телефон: +7 916 111-22-33\nСтраница: главная", False),  # not a URL
])
def test_what_makes_a_form_notification(text, expected):
    assert is_form(form_fields(text)) is expected


def test_a_client_who_writes_form_lines_from_their_own_address_keeps_their_name_and_thread():
    raw = ("From: Ivan Petrov <ivan@example.org>\r\nTo: sales@example.com\r\nMessage-ID: <own-1@example.org>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nТелефон: +7 916 111-22-33\r\n"
           "E-mail: ivan@example.org\r\nСтраница: https://site.example/?utm_source=vk\r\n").encode()
    [parsed] = imap.parse(Inbound(method="IMAP", url="", body=raw), MAILBOX_SETTINGS)
    assert (parsed.fields["from_name"], parsed.fields["from_email"]) == ("Ivan Petrov", "ivan@example.org")
    assert "relayed_by" not in parsed.fields


def test_plus_address_tag_maps_to_utm_source(parse):
    parsed = parse("plus__tag_yandex.eml")
    assert parsed.fields["plus_tag"] == "yandex"
    assert mapped(parsed).source == {"utm_source": "yandex"}
    assert mapped(parsed).lead["phone"] == "+79165556677"


def test_thread_reply_lists_in_reply_to_and_references_and_skips_quoted_phones(parse):
    parsed = parse("thread__reply_in_reply_to.eml")
    assert parsed.extra["thread"] == ["confirm-123@hub.example.com", "original-request-7@example.ru"]
    assert parsed.extra["touch_key"] == "mail:reply-0001@example.ru"
    assert (parsed.fields["phone"], parsed.fields["phone_ext"]) == ("+74959876543", "105")


def test_no_message_id_keys_on_a_hash_of_the_bytes(parse):
    digest = hashlib.sha256(fixture_bytes("mail/message__no_message_id.eml")).hexdigest()
    parsed = parse("message__no_message_id.eml")
    assert parsed.delivery_key == f"mail/sha256:{digest}"
    assert parsed.extra["touch_key"] == f"mail:sha256:{digest}"
    assert imap.delivery_key(fixture_bytes("mail/message__no_message_id.eml")) == parsed.delivery_key
    assert "message_id" not in parsed.fields


def test_the_pollers_cheap_key_equals_the_parsed_one(parse):
    for path in (FIXTURES / "mail").glob("*.eml"):
        if path.name.startswith("broken"):
            continue
        assert imap.delivery_key(path.read_bytes()) == parse(path.name).delivery_key, path.name


def test_broken_mime_is_refused_so_the_pipeline_marks_it_failed(parse):
    with pytest.raises(BadRequest, match="unparseable MIME"):
        parse("broken__mime_no_boundary.eml")


def test_date_falls_back_to_internaldate():
    raw = b"From: a@example.org\r\nDate: not a date\r\nMessage-ID: <d@x>\r\n\r\nhi\r\n"
    inbound = Inbound(method="IMAP", url="", body=raw, headers={"x-imap-internaldate": "2026-11-23T10:00:00+03:00"})
    assert imap.parse(inbound, MAILBOX_SETTINGS)[0].fields["date"] == "2026-11-23T10:00:00+03:00"
    absurd = raw.replace(b"not a date", b"Mon, 01 Jan 1900 00:00:00 +0000")
    inbound = Inbound(method="IMAP", url="", body=absurd, headers={"x-imap-internaldate": "2026-11-23T10:00:00+03:00"})
    assert imap.parse(inbound, MAILBOX_SETTINGS)[0].fields["date"] == "2026-11-23T10:00:00+03:00"


@pytest.mark.parametrize("data, declared, expected", [
    ("Привет".encode("cp1251"), "windows-1251", "Привет"),
    ("Привет".encode(), "us-ascii", "Привет"),  # mislabeled: UTF-8 next
    ("Привет".encode("cp1251"), None, "Привет"),  # undeclared, not UTF-8: windows-1251
    ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
    ("Привет".encode(), "no-such-charset", "Привет"),
    ("Привет".encode(), "rot13", "Привет"),  # a codec, but not a text encoding
])
def test_lenient_decoding_never_raises(data, declared, expected):
    assert decode_bytes(data, declared) == expected


def test_charset_aliases():
    assert codec("utf8") == "utf-8"
    assert codec('"UTF-8"') == "utf-8"
    assert codec("x-cp1251") == "cp1251"
    assert codec("bogus") is None


def test_headers_with_unknown_charset_or_bad_base64_do_not_crash():
    assert header_text("=?x-unknown-cs?B?0J/RgNC40LLQtdGC?=") == "Привет"
    assert isinstance(header_text("=?utf-8?B?!!!?="), str)


def test_html_to_text_blocks_entities_and_hidden_elements():
    html = ('<div>Line&nbsp;one</div><div style="display: none">secret</div><p>Two<br>three</p>'
            '<span style="font-size:0px">pre</span><ul><li>a</li><li>b</li></ul>')
    assert html_to_text(html) == "Line one\n\nTwo\nthree\n\na\n\nb"
