"""Restore images without targets (see hdm/predict.py, also installed as `hdm-predict`).

    python scripts/predict.py INPUT OUTPUT_DIR -c CONFIG --weights W.pth [--tile 512 --overlap 32] [--amp]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hdm.predict import console  # noqa: E402

if __name__ == "__main__":
    console()
