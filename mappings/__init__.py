"""Data only: ``<kind>/<provider>.yaml`` files, which provider field feeds which lead field.

A package so that the files ship in the wheel; ``FOLDER`` is where they are once installed."""
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
