"""The one exception type of smoothcert.

Every invalid input raises :class:`SmoothCertError` with a one-line message naming the problem.
The command line turns it into that line on stderr and exit status 2 (never a traceback).
"""


class SmoothCertError(ValueError):
    """Bad input or an unusable file: the message is one line that names the problem."""
