"""The contracts every part shares: stdlib only, importing nothing of the project."""
