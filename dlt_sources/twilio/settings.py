"""Twilio REST API constants."""

TWILIO_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
PAGE_SIZE = 1000  # the API's maximum
MAX_CONCURRENCY = 10  # Twilio answers 429 (code 20429) past its concurrency limit
# Pages each resource fetches at once and holds for dlt: the three resources run round-robin, so an account has
# up to three times this in flight, past MAX_CONCURRENCY; more only holds more pages in memory (about 4 MB each).
PAGES_AHEAD = 4
DEFAULT_LOOKBACK_DAYS = 0  # from the cursor's day; unpriced calls and messages are fetched again by sid
DEFAULT_USAGE_RECORDS_LOOKBACK_DAYS = 3  # a day's totals settle after it
DEFAULT_INITIAL_DAYS = 30
REQUEST_TIMEOUT_SECONDS = 60
# Column types (dlt data types): the API's numbers-as-strings stay text, and columns null in a first load exist.
CALL_TYPES = dict.fromkeys(("price", "duration", "queue_time", "parent_call_sid", "start_time", "end_time"), "text")
MESSAGE_TYPES = {**dict.fromkeys(("price", "num_segments", "num_media", "messaging_service_sid", "date_sent",
                                  "error_message"), "text"), "error_code": "bigint"}
USAGE_RECORD_TYPES = dict.fromkeys(("price", "count", "usage"), "text")
