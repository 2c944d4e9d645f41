"""`python3 -m cli ...` is the `clearinghouse` command."""

import sys

from cli.main import main

sys.exit(main())
