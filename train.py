"""`python train.py ...` = `hdm-train ...` (hdm/cli/train.py)."""
from hdm.cli import console
from hdm.cli.train import main

if __name__ == "__main__":
    console(main)
