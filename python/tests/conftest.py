import os
import sys

# Run from the repository root (`python3 -m pytest python/tests`) without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
