"""Print one of the README's two commands (deploy | test): CI runs the README, not a copy."""

import re
import sys
from pathlib import Path

block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", Path("README.md").read_text(), re.S)
lines = [line for line in block.group(1).splitlines() if line.strip()] if block else []
if len(lines) != 2:
    sys.exit("README.md: the first fenced block must hold exactly two commands (deploy, test)")
print(lines[{"deploy": 0, "test": 1}[sys.argv[1]]])
