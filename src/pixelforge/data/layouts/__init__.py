"""One module per dataset layout; each turns a source into a Manifest. See ``pixelforge.data.read``."""
