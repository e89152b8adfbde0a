import sys

from mmu_bench.cli import main

sys.exit(main())
