"""pixelforge: a data-centric toolkit for image classification."""

__version__ = "0.1.0"

from pixelforge.data.manifest import Manifest  # noqa: E402
from pixelforge.data.read import read_dataset  # noqa: E402
from pixelforge.errors import PixelforgeError  # noqa: E402

__all__ = ["Manifest", "PixelforgeError", "__version__", "read_dataset"]
