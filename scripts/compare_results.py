"""Compare two results folders (e.g. the committed run and a FRESH=1 re-extraction); see equal.report.compare."""

import sys

from equal.report.compare import main

if __name__ == "__main__":
    sys.exit(main())
