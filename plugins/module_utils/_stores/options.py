# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The argument spec of a store (option ``stores`` of ``keystores`` and ``retire``).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only, and nothing else imported: the retire module
loads it whether or not it is given stores (the backends are imported only when it is).
"""

from __future__ import annotations

from typing import Any, Dict

# The store types; the engine's backends are checked against it (tests/unit).
STORE_TYPES = ["debian", "der", "jks", "nss", "pem", "pem_dir", "pkcs12", "redhat"]


def store_options(adding: bool = True) -> Dict[str, Any]:
    """The suboptions of one store; ``adding`` False (retire: removal only) leaves out
    ``create`` and ``names``, which only say where new entries go."""
    options: Dict[str, Any] = dict(
        path=dict(type="path", required=True),
        type=dict(type="str", required=True, choices=STORE_TYPES),
        password=dict(type="str", no_log=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="str"),
        refresh=dict(type="str"),
    )
    if adding:
        options.update(create=dict(type="bool", default=False), names=dict(type="list", elements="str"))
    return options
