"""``from pixelforge.keras import ImageDataGenerator``: the path users type; the code lives in
:mod:`pixelforge.compat.keras`."""

from pixelforge.compat.keras import (
    DataFrameIterator,
    DirectoryIterator,
    ImageDataGenerator,
    Iterator,
    NumpyArrayIterator,
    array_to_img,
    img_to_array,
    load_img,
)

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator", "DataFrameIterator",
           "array_to_img", "img_to_array", "load_img"]
