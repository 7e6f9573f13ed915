"""`python -m controller` is `srem`."""

import sys

from controller.cli import main

sys.exit(main())
