"""Drop-ins for other libraries' APIs, so scripts written for them run on pixelforge.

    from pixelforge.keras import ImageDataGenerator   # compat.keras, under the path users type
"""
