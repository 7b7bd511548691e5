"""The one exception type for a user's mistake.

Library code raises ``UserError`` with a message that names the problem *and* the fix; the CLI
prints it on one line and exits with status 2 (``--debug`` shows the traceback instead).
"""


class UserError(Exception):
    """A mistake the user can fix: bad path, malformed spec, unknown key, corrupt file."""


class TrainingDiverged(Exception):
    """Training went non-finite (a NaN or inf loss or gradient norm) and `train.on_nan` says stop (or its
    rollbacks are spent). Not the user's input mistake, but said the same way: one line naming the step and
    the fix; the CLI exits with status `EXIT_STATUS`. The last good checkpoint stays the run's latest."""

    EXIT_STATUS = 3
