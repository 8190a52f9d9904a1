import hashlib

import pytest

from connectors import twilio_signature
from connectors.base import Forbidden, Inbound, Unauthorized, UnsupportedMediaType

# The public test vectors from twilio-python's tests (tests/unit/test_request_validator.py).
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
          ("From", "+14158675309"), ("To", "+18005551212")]
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
JSON_BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_URL = f"{URL}&bodySHA256={BODY_HASH}"
JSON_EXPECTED = "a9nBmqA0ju/hNViExpshrM61xv4="
# HMAC-SHA256 (a Webhook Setting's SharedKey "12345"), computed with twilio-python 9.13.0's
# RequestValidator("12345").compute_signature(url, params, "HMAC_SHA256").
SHA256_EXPECTED = "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s="
SHA256_JSON_EXPECTED = "+UOCWf84gdgo/5Hpg4m5/EgKnJA2/TbOw5sPNVr3bPk="
SETTINGS_HEADER = "key=webhooks_sharedkey_01hx3k4m5n6p7q8r9s0t1v2w3x,algorithm=HMAC_SHA256"


def json_post(signature: str | None, body: bytes = JSON_BODY, url: str = JSON_URL, **headers) -> Inbound:
    headers = {"content-type": "application/json", **headers}
    if signature:
        headers["x-twilio-signature"] = signature
    return Inbound(method="POST", url=url, headers=headers, body=body)


def test_public_vector():
    assert twilio_signature.compute(URL, PARAMS, "12345") == EXPECTED


def test_ports_are_accepted_both_ways_as_the_sdk_does():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    twilio_signature.verify(with_port, PARAMS, EXPECTED, "12345")
    signed_with_port = twilio_signature.compute(with_port, PARAMS, "12345")
    assert signed_with_port == "kvajT1Ptam85bY51eRf/AJRuM3w="  # twilio-python's vector
    twilio_signature.verify(URL, PARAMS, signed_with_port, "12345")
    twilio_signature.verify("https://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS, EXPECTED, "12345")


def test_missing_and_wrong_signatures():
    with pytest.raises(Unauthorized):
        twilio_signature.verify(URL, PARAMS, None, "12345")
    with pytest.raises(Forbidden):
        twilio_signature.verify(URL, PARAMS, EXPECTED, "other-token")
    with pytest.raises(Forbidden):  # whitespace in a value is significant
        twilio_signature.verify(URL, PARAMS[:-1] + [("To", "+18005551212 ")], EXPECTED, "12345")
    with pytest.raises(Forbidden):  # a forged header may hold any text: refused, not a crash
        twilio_signature.verify(URL, PARAMS, "Подпись", "12345")


def test_repeated_parameters_are_each_signed():
    params = [("MediaUrl", "b"), ("MediaUrl", "a"), ("Body", "hi")]
    assert twilio_signature.compute("https://h/x", params, "t") == twilio_signature.compute(
        "https://h/x", list(reversed(params)), "t")


def test_a_json_webhook_is_signed_over_the_url_with_its_body_hash():
    assert hashlib.sha256(JSON_BODY).hexdigest() == BODY_HASH
    twilio_signature.verify_request(json_post(JSON_EXPECTED), {"auth_token": "12345"})
    assert twilio_signature.request_params(json_post(JSON_EXPECTED)) == [
        ("property", "value"), ("boolean", "true")]


def test_a_json_webhook_is_refused_unless_body_hash_and_signature_hold():
    settings = {"auth_token": "12345"}
    with pytest.raises(Forbidden) as changed:
        twilio_signature.verify_request(json_post(JSON_EXPECTED, body=JSON_BODY.replace(b"value", b"other")), settings)
    assert changed.value.fields == {"bodySHA256": "does not match the body"}
    with pytest.raises(Unauthorized) as no_hash:
        twilio_signature.verify_request(json_post(JSON_EXPECTED, url=URL), settings)
    assert no_hash.value.fields == {"bodySHA256": "missing"}
    with pytest.raises(Forbidden) as forged:
        twilio_signature.verify_request(json_post(EXPECTED), settings)
    assert forged.value.fields == {"X-Twilio-Signature": "invalid"}
    with pytest.raises(Unauthorized):
        twilio_signature.verify_request(json_post(None), settings)


def test_other_bodies_are_unsupported_media():
    with pytest.raises(UnsupportedMediaType) as caught:
        twilio_signature.verify_request(json_post(JSON_EXPECTED, **{"content-type": "text/xml"}),
                                        {"auth_token": "12345"})
    assert caught.value.fields == {
        "content-type": "Twilio posts application/x-www-form-urlencoded or application/json"}


def test_a_shared_key_hmac_sha256_signature_is_checked_with_the_shared_key():
    assert twilio_signature.compute(URL, PARAMS, "12345", "HMAC_SHA256") == SHA256_EXPECTED
    settings = {"auth_token": "account-token", "shared_key": "12345"}
    signed = json_post(SHA256_JSON_EXPECTED, **{"x-twilio-webhooks-signature-settings": SETTINGS_HEADER})
    assert twilio_signature.verify_request(signed, settings) is None
    with pytest.raises(Forbidden):  # the auth token is not the key once a Setting signs
        twilio_signature.verify_request(signed, {**settings, "shared_key": "account-token"})
    with pytest.raises(Unauthorized) as unconfigured:
        twilio_signature.verify_request(signed, {"auth_token": "12345"})
    assert unconfigured.value.message == "the Twilio webhook shared key (shared_key_env) is not configured"


@pytest.mark.parametrize("header,algorithm", [
    ("key=webhooks_sharedkey_01,algorithm=HMAC_SHA256", "HMAC_SHA256"),
    (" algorithm = hmac_sha256 , key=webhooks_sharedkey_01", "HMAC_SHA256"),
    ("key=webhooks_sharedkey_01", "HMAC_SHA1"),
    ("key=webhooks_sharedkey_01,algorithm=HMAC_SHA1", "HMAC_SHA1"),
])
def test_the_settings_header_names_the_algorithm(header, algorithm):
    assert twilio_signature.signing_key(header, {"shared_key": "k"}) == ("k", algorithm)


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(Forbidden) as caught:
        twilio_signature.signing_key("key=webhooks_sharedkey_01,algorithm=HMAC_SHA512", {"shared_key": "k"})
    assert caught.value.fields == {
        "X-Twilio-Webhooks-Signature-Settings": "algorithm is not one of HMAC_SHA1, HMAC_SHA256"}
