"""`python -m rdma_emulator memserver|emac`: the emulator's processes without the controller (rdma_emulator/cli.py)."""

import sys

from rdma_emulator.cli import main

sys.exit(main())
