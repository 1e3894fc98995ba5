"""The one exception type users see: its message is printed by the CLI, without a traceback."""


class ChatbotError(Exception):
    """An error the user can fix; the CLI prints its message without a traceback."""
