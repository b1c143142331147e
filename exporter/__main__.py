import sys

from rooftop.exporter.cli import main

sys.exit(main())
