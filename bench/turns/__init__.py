"""``python -m bench.turns``: two compiled builds compared in processes taking turns."""
