import pytest

from connectors import twilio_signature
from connectors.base import Forbidden, Unauthorized

# The public test vector from twilio-python's tests (shared/formats/twilio.md).
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
          ("From", "+14158675309"), ("To", "+18005551212")]
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_public_vector():
    assert twilio_signature.compute(URL, PARAMS, "12345") == EXPECTED


def test_default_port_is_accepted_both_ways():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    twilio_signature.verify(with_port, PARAMS, EXPECTED, "12345")
    signed_with_port = twilio_signature.compute(with_port, PARAMS, "12345")
    twilio_signature.verify(URL, PARAMS, signed_with_port, "12345")


def test_missing_and_wrong_signatures():
    with pytest.raises(Unauthorized):
        twilio_signature.verify(URL, PARAMS, None, "12345")
    with pytest.raises(Forbidden):
        twilio_signature.verify(URL, PARAMS, EXPECTED, "other-token")
    with pytest.raises(Forbidden):  # whitespace in a value is significant
        twilio_signature.verify(URL, PARAMS[:-1] + [("To", "+18005551212 ")], EXPECTED, "12345")


def test_repeated_parameters_are_each_signed():
    params = [("MediaUrl", "b"), ("MediaUrl", "a"), ("Body", "hi")]
    assert twilio_signature.compute("https://h/x", params, "t") == twilio_signature.compute(
        "https://h/x", list(reversed(params)), "t")
