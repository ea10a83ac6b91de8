"""``python -m sparsity_search`` behaves exactly like the ``sparsity-search`` console script."""

import sys

from .cli import main

sys.exit(main())
