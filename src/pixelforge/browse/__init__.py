"""``pixelforge browse``: a local web app to look through a dataset (with its audit and a model's
predictions), decide per image (relabel, exclude, checked as fine, keep one of a duplicate group), and
write the decisions to a curation file that every other command reads with ``--curation FILE``.

Only ``curation`` is imported by the data layer; the server (``app``, Starlette + uvicorn) loads when used.
"""
