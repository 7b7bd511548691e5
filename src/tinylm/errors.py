"""The one exception type for a user's mistake.

Library code raises ``UserError`` with a message that names the problem *and* the fix; the CLI
prints it on one line and exits with status 2 (``--debug`` shows the traceback instead).
"""


class UserError(Exception):
    """A mistake the user can fix: bad path, malformed spec, unknown key, corrupt file."""
