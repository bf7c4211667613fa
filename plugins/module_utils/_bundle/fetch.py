# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read the bundle from a URL (Ansible's own URL helpers) or a local path, bounded.

This API is private to the sne.guichet collection; it may change without notice.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ansible.module_utils.urls import fetch_url

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import FetchError


def is_url(src: str) -> bool:
    return src.lower().startswith(("http://", "https://"))


def read_source(module: Any, src: str, max_size: int, timeout: int) -> bytes:
    """Bytes of ``src``, at most ``max_size + 1`` of them: a longer source is cut there,
    and the archive checks (``zip_limits``) refuse it.

    URLs go through ``ansible.module_utils.urls.fetch_url``, which honours the module's
    ``validate_certs``, ``ca_path``, ``use_proxy`` and the usual proxy variables of the
    environment (``https_proxy``, ``no_proxy``...).
    """
    if is_url(src):
        response, info = fetch_url(module, src, timeout=timeout, method="GET",
                                   ca_path=module.params.get("ca_path"))
        status = info.get("status", -1)
        if response is None or status != 200:
            raise FetchError("cannot download %s: HTTP %s %s" % (src, status, info.get("msg", "")))
        try:
            data = response.read(max_size + 1)
        finally:
            response.close()
    else:
        path = os.path.expanduser(src)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
                raise FetchError("cannot read %s: not a regular file" % src)
            with open(path, "rb") as handle:
                data = handle.read(max_size + 1)
        except OSError as exc:
            raise FetchError("cannot read %s: %s" % (src, exc.strerror or exc))
    return data
