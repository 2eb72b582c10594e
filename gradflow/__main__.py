"""``python -m gradflow``: the same as the ``gradflow`` command."""

import os
import sys

# `python -m` puts the working directory first on sys.path: a numpy.py or tqdm.py lying there
# would then run inside gradflow. Drop it, unless gradflow itself is being run from there
# (a source checkout). A user task is imported only on request (sweep --task-module).
if (
    sys.path
    and os.path.realpath(sys.path[0] or os.curdir) == os.path.realpath(os.getcwd())
    and (os.path.dirname(os.path.dirname(os.path.realpath(__file__))) != os.path.realpath(os.getcwd()))
):
    del sys.path[0]

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
