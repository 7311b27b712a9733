"""OpenRouter API constants."""

OPENROUTER_API_BASE = "https://openrouter.ai/api/v1"
ACTIVITY_DAYS_AVAILABLE = 30  # /activity covers the last 30 completed UTC days only
DEFAULT_LOOKBACK_DAYS = 3
KEYS_PAGE_SIZE = 100
REQUEST_TIMEOUT_SECONDS = 60
