import sys

from rentstack.cli import main

sys.exit(main())
