"""Where the shared data lives: ``../shared/data`` beside the repository
(CI clones the repo to X/main with X/shared beside it).  CNN_CORE_SHARED_DATA overrides."""
import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("CNN_CORE_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
MNIST_DIR = SHARED_DATA / "mnist"
DLFS_DIR = SHARED_DATA / "dlfs"
