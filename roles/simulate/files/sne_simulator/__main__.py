# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry point: ``python simulator/sne_simulator ...`` or ``python -m sne_simulator ...`` (see ``cli``)."""

import os
import sys

if not __package__:
    # Run as ``python simulator/sne_simulator``: Python put the package folder first on sys.path,
    # where http.py would hide the standard library's http. Import the package from its parent.
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or os.curdir) != _HERE]
    sys.path.insert(0, os.path.dirname(_HERE))

from sne_simulator.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
