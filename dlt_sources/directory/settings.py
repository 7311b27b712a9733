"""Directory file location."""

DEFAULT_DIRECTORY_PATH = ".local/directory.yaml"
