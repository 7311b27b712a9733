"""Webhook signatures against the official SDKs' own test vectors."""

import pytest

from tests.conftest import reference_json
from webhooks.signatures import retell_signature, twilio_signature, verify_retell, verify_twilio

VECTORS = reference_json("signature_vectors.json")
RETELL = VECTORS["retell"]
TWILIO = VECTORS["twilio"]


def test_retell_signature_matches_sdk_vector():
    assert retell_signature(RETELL["body"], RETELL["api_key"], RETELL["timestamp_ms"]) == RETELL["expected_header"]


@pytest.mark.parametrize("offset_ms, accepted", [(0, True), (300_000, True), (-300_000, True),
                                                 (300_001, False), (-300_001, False)])
def test_retell_five_minute_window(offset_ms, accepted):
    now = RETELL["timestamp_ms"] + offset_ms
    assert verify_retell(RETELL["body"], RETELL["api_key"], RETELL["expected_header"], now_ms=now) is accepted


@pytest.mark.parametrize("header", [
    "",
    "v=1700000000000",
    "v=1700000000000,d=" + RETELL["expected_digest"].upper(),
    "x" + RETELL["expected_header"],
    RETELL["expected_header"] + ",extra=1",
    "v=1700000000000,d=" + "0" * 64,
])
def test_retell_rejects_malformed_or_wrong_headers(header):
    assert not verify_retell(RETELL["body"], RETELL["api_key"], header, now_ms=RETELL["timestamp_ms"])


def test_retell_rejects_other_body_or_key():
    now = RETELL["timestamp_ms"]
    assert not verify_retell(RETELL["body"] + " ", RETELL["api_key"], RETELL["expected_header"], now_ms=now)
    assert not verify_retell(RETELL["body"], "other-key", RETELL["expected_header"], now_ms=now)


def test_twilio_signature_vectors():
    token, uri, params = TWILIO["auth_token"], TWILIO["uri"], TWILIO["params"]
    assert twilio_signature(uri, params, token) == TWILIO["expected"]
    assert twilio_signature(uri.replace(".com/", ".com:443/"), params, token) == TWILIO["expected_https_with_port_443"]
    http = uri.replace("https://", "http://")
    assert twilio_signature(http.replace(".com/", ".com:80/"), params, token) == TWILIO["expected_http_with_port_80"]
    with_port_1234 = http.replace(".com/", ".com:1234/")
    assert twilio_signature(with_port_1234, params, token) == TWILIO["expected_http_with_port_1234"]
    duplicates = [tuple(pair) for pair in TWILIO["duplicate_params_multidict"]]
    assert twilio_signature(uri, duplicates, token) == TWILIO["duplicate_expected"]


def test_twilio_accepts_both_port_variants():
    token, uri, params = TWILIO["auth_token"], TWILIO["uri"], TWILIO["params"]
    assert verify_twilio(uri, params, TWILIO["expected"], token)
    assert verify_twilio(uri, params, TWILIO["expected_https_with_port_443"], token)
    assert verify_twilio(uri.replace(".com/", ".com:443/"), params, TWILIO["expected"], token)


def test_twilio_rejects_tampering():
    token, uri, params = TWILIO["auth_token"], TWILIO["uri"], TWILIO["params"]
    assert not verify_twilio(uri, {**params, "Digits": "9999"}, TWILIO["expected"], token)
    assert not verify_twilio(uri, params, TWILIO["expected"], "wrong-token")
    assert not verify_twilio(uri, params, "", token)


def test_twilio_json_body_hash():
    token = TWILIO["auth_token"]
    assert verify_twilio(TWILIO["json_uri"], TWILIO["json_body"], TWILIO["json_expected"], token)
    assert not verify_twilio(TWILIO["json_uri"], TWILIO["json_body"] + " ", TWILIO["json_expected"], token)
    without_hash = TWILIO["json_uri"].split("&bodySHA256")[0]
    assert not verify_twilio(without_hash, TWILIO["json_body"], TWILIO["json_expected"], token)
