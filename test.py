"""`python test.py ...` = `hdm-test ...` (hdm/cli/test.py)."""
from hdm.cli import console
from hdm.cli.test import main

if __name__ == "__main__":
    console(main)
