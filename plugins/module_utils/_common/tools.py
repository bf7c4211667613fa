# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The adapter from an AnsibleModule to what module_utils code takes: run_command, find_tool.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

# run_command(argv, data=None) -> (rc, stdout, stderr); AnsibleModule.run_command fits.
CommandRunner = Callable[..., Any]


def module_tools(module: Any) -> Tuple[CommandRunner, Callable[[str], Optional[str]]]:
    """The ``run_command`` and ``find_tool`` the backends take, from an AnsibleModule.

    ``find_tool`` accepts a bare name (looked up like AnsibleModule.get_bin_path) or an
    absolute path (used if executable).
    """

    def run_command(argv: List[str], data: Optional[str] = None,
                    environ_update: Optional[dict] = None) -> Any:
        return module.run_command(argv, data=data, environ_update=environ_update,
                                  binary_data=False)

    def find_tool(name: str) -> Optional[str]:
        if os.path.isabs(name):
            return name if os.access(name, os.X_OK) else None
        return module.get_bin_path(name, required=False)

    return run_command, find_tool
