"""``python -m nagindex.cli``, as the tests and tools run the command in a subprocess."""
import sys

from . import main

sys.exit(main())
