# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception tree of the collection's module_utils: every error has a code and a reason.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

``code`` is a short machine-readable word (tests and reports use it), ``reason`` the sentence
an operator reads. Every other exception class of module_utils derives from :class:`SneError`.
"""

from __future__ import annotations

from typing import Any

# Error codes a backend reports; the module maps them to messages for the operator.
WRONG_PASSWORD = "wrong_password"
CORRUPT = "corrupt"
UNKNOWN_FORMAT = "unknown_format"
TOOL_MISSING = "tool_missing"
NOT_FOUND = "not_found"
IO_ERROR = "io_error"
VERIFY_FAILED = "verify_failed"
UNSUPPORTED = "unsupported"
LOCKED = "locked"  # another run holds the store's lock (``_common/lock.py``)


class SneError(Exception):
    """Base of every error raised by sne.guichet's module_utils: ``code`` + ``reason``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class StoreError(SneError):
    """A store could not be read or written; it has been left as it was."""


ARGUMENTS = "arguments"


class ArgumentError(SneError):
    """Options the code cannot work with; nothing has been read or touched."""

    def __init__(self, reason: str) -> None:
        super().__init__(ARGUMENTS, reason)


class ScanError(ArgumentError):
    """An option the scan cannot work with."""


class BundleError(SneError):
    """The bundle was refused; ``check`` (the code) names the check that failed."""

    def __init__(self, check: str, msg: str, **facts: Any) -> None:
        super().__init__(check, msg)
        self.check = check
        self.msg = msg
        self.facts = facts


class FetchError(SneError):
    """The bundle could not be fetched from its source."""

    def __init__(self, reason: str) -> None:
        super().__init__("fetch", reason)


class ProbeError(SneError):
    """The probe stops with status ``error``; ``code`` says at which step."""


class EnvelopeError(SneError):
    """The message could not be encrypted, or the envelope is not what the SNE expects."""


class TransportError(SneError):
    """The message could not be handed over to the SNE."""

    def __init__(self, reason: str) -> None:
        super().__init__("transport", reason)


class Malformed(SneError, ValueError):
    """Bytes that do not hold the structure they should (code ``corrupt``).

    ``offset`` is where it goes wrong, ``what`` says what was being read. Also a ValueError:
    the certificate reader has always raised ValueError for malformed input.
    """

    _kind = "garbled"

    def __init__(self, offset: int, what: str = "") -> None:
        self.offset, self.what = offset, what
        super().__init__(CORRUPT, "%s at byte %d%s" % (self._kind, offset, ": " + what if what else ""))


class Truncated(Malformed):
    """The data ends inside an element: a cut file (every prefix of a good one is this)."""

    _kind = "truncated"


class Garbled(Malformed):
    """A byte that is there does not fit: the data is damaged, or is something else."""
