"""The one exception type for mistakes a user can fix (bad file, key, value or shape)."""


class WLDetectError(Exception):
    """A user error: its message is one line naming the file, key or value and what was expected.

    The CLI prints it without a traceback and exits non-zero; library callers can catch it.
    """
