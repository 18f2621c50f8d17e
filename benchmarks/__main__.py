"""`python -m benchmarks` = `python -m benchmarks.run`."""

import sys

from .run import main

sys.exit(main())
