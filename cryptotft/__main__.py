"`python -m cryptotft`: the `cryptotft` command (written by hand: nbdev exports no `__main__`)."

import sys

from cryptotft.cli import main

sys.exit(main())
