"""``python -m deploytools.gate``: the CI gate without invoke."""

import sys

from deploytools.gate.cli import main

sys.exit(main())
