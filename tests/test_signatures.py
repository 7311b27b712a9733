"""Webhook signatures against the official SDKs' own test vectors."""

import pytest

from billing_usage.signatures import (
    HMAC_SHA1,
    HMAC_SHA256,
    retell_signature,
    twilio_body_hash,
    twilio_signature,
    twilio_signature_settings,
    twilio_signature_settings_header,
    verify_retell,
    verify_twilio,
)
from tests.conftest import reference_json

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


# SharedKey signatures, cross-checked against the official SDK (a pinned dev dependency).
SHARED_SECRET = "webhooks-shared-key-secret"
SDK_CASES = [
    (TWILIO["uri"], TWILIO["params"]),
    (TWILIO["uri"].replace(".com/", ".com:443/"), TWILIO["params"]),
    ("http://example.com:1234/webhooks/twilio", TWILIO["params"]),
    (TWILIO["uri"], [tuple(pair) for pair in TWILIO["duplicate_params_multidict"]]),
    ("https://example.com/webhooks/twilio", {"Body": "héllo ☃ +%&=", "MessageSid": "SM1", "Empty": ""}),
]


def _sdk_params(params):
    """The SDK reads repeated parameters from a multidict (getlist), as Django and Starlette give them."""
    from starlette.datastructures import ImmutableMultiDict
    return ImmutableMultiDict(params)


@pytest.mark.parametrize("algorithm", [HMAC_SHA1, HMAC_SHA256, "hmac_sha256"])
@pytest.mark.parametrize("uri, params", SDK_CASES)
def test_twilio_signatures_match_the_official_sdk(uri, params, algorithm):
    from twilio.request_validator import RequestValidator

    sdk = RequestValidator(SHARED_SECRET)
    ours = twilio_signature(uri, params, SHARED_SECRET, algorithm)
    assert ours == sdk.compute_signature(uri, _sdk_params(params), algorithm)
    assert sdk.validate(uri, _sdk_params(params), ours, algorithm)
    assert verify_twilio(uri, params, ours, SHARED_SECRET, algorithm)
    other = HMAC_SHA1 if algorithm.upper() == HMAC_SHA256 else HMAC_SHA256
    assert not verify_twilio(uri, params, ours, SHARED_SECRET, other)
    assert not sdk.validate(uri, _sdk_params(params), ours, other)
    tampered = [*(params.items() if isinstance(params, dict) else params), ("Extra", "1")]
    assert not verify_twilio(uri, tampered, ours, SHARED_SECRET, algorithm)
    assert not sdk.validate(uri, _sdk_params(tampered), ours, algorithm)


@pytest.mark.parametrize("algorithm", [HMAC_SHA1, HMAC_SHA256])
def test_twilio_json_body_signatures_match_the_official_sdk(algorithm):
    from twilio.request_validator import RequestValidator

    sdk = RequestValidator(SHARED_SECRET)
    body = TWILIO["json_body"]
    uri = f"https://example.com/webhooks/twilio?bodySHA256={twilio_body_hash(body)}"
    ours = twilio_signature(uri, {}, SHARED_SECRET, algorithm)
    assert ours == sdk.compute_signature(uri, {}, algorithm)
    assert sdk.validate(uri, body, ours, algorithm) and verify_twilio(uri, body, ours, SHARED_SECRET, algorithm)
    assert not sdk.validate(uri, body + " ", ours, algorithm)
    assert not verify_twilio(uri, body + " ", ours, SHARED_SECRET, algorithm)


def test_unsupported_algorithms_never_verify_as_in_the_sdk():
    from twilio.request_validator import RequestValidator

    uri, params = TWILIO["uri"], TWILIO["params"]
    signature = twilio_signature(uri, params, SHARED_SECRET, HMAC_SHA256)
    assert not RequestValidator(SHARED_SECRET).validate(uri, params, signature, "HMAC_MD5")
    assert not verify_twilio(uri, params, signature, SHARED_SECRET, "HMAC_MD5")


@pytest.mark.parametrize("header, key_id", [
    (None, None), ("", None), ("garbage", None), ("algorithm=HMAC_MD5", None),
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", "webhooks_sharedkey_1"),
    ("algorithm=HMAC_SHA256,key=k", "k"), (" key = k , algorithm = hmac_sha256 ", "k"), ("key=k", "k"),
    ("key=k,algorithm=", "k"), ("key=k,algorithm=HMAC_SHA1", "k"), ("key=a=b,algorithm=HMAC_SHA256", "a=b"),
    ("algorithm=HMAC_SHA256,algorithm=HMAC_SHA1", None), ("key=,key=k2", "k2"),
])
def test_signature_settings_header_is_read_as_the_sdk_reads_it(header, key_id):
    from twilio.request_validator import get_signature_algorithm

    assert twilio_signature_settings(header) == (key_id, get_signature_algorithm(header))


def test_settings_header_names_the_shared_key():
    header = twilio_signature_settings_header("webhooks_sharedkey_1")
    assert header == "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert twilio_signature_settings(header) == ("webhooks_sharedkey_1", HMAC_SHA256)
    assert twilio_signature_settings(None) == (None, HMAC_SHA1)
