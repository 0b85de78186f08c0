"""``python -m pixelforge`` (what ``torchrun -m pixelforge train …`` runs in each process)."""

from pixelforge.cli import app

app(prog_name="pixelforge")
