"""python -m checkpoint_journal.cli"""

import sys

from checkpoint_journal.cli.main import main

sys.exit(main())
