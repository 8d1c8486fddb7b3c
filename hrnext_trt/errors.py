"""The one exception type users see.

Every check of user input (files, shapes, checkpoints, engines) raises ``HrnextError`` with a
single line that says what is wrong and how to fix it; the CLI prints it without a traceback.
"""


class HrnextError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str):
        # One line, always: a multi-line message would be cut by log collectors and CI summaries.
        super().__init__(" ".join(str(message).split()))
