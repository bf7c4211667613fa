"""Stand-in for the pip bootstrap script ansible-test downloads from its CI host.

ansible-test creates its sanity virtual environments without pip and then runs
``python get_pip.py [options] pip==X`` to add it. That host is not reachable from this
network, so this script does the same from what Python ships and PyPI: ``ensurepip``,
then ``pip install`` of the requested packages. scripts/test.sh copies it to the cache
path ansible-test looks in first.
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                      stdout=subprocess.DEVNULL)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
