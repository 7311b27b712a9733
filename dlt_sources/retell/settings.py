"""Retell API constants."""

RETELL_API_BASE = "https://api.retellai.com"
LIST_CALLS_PATH = "/v3/list-calls"
GET_CALL_PATH = "/v2/get-call/{call_id}"  # the SDK's call.retrieve
PAGE_SIZE = 1000  # the API's maximum
DEFAULT_LOOKBACK_HOURS = 1  # calls listed late; calls whose cost is still open are fetched again by id
DEFAULT_INITIAL_DAYS = 30
# Nested parts stay JSON columns; staging unpacks them.
CALL_TYPES = dict.fromkeys(("call_cost", "llm_token_usage", "telephony_identifier", "metadata", "call_analysis"),
                           "json")
REQUEST_TIMEOUT_SECONDS = 300  # the SDK's own timeout for list calls
