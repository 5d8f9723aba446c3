"""The one exception type users see.

Every problem with user input (a runs table, a law name, a file) is raised as :class:`BayesMoeError`
with a one-line message that names the column, value or file and says what is expected. The command
line prints it as ``error: <message>`` and exits with status 2.
"""


class BayesMoeError(ValueError):
    """A problem with the user's input, described in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
