"""``python -m graphunlearn.cli``: the ``graphunlearn`` command."""

import sys

from . import main

sys.exit(main())
