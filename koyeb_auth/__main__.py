import sys

from .cli._command import main

sys.exit(main())
