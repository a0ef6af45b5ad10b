"""A real application under load: TechEmpower's database tests through FastAPI.

``python -m bench.app`` (``make bench-app``) runs one FastAPI app per pool
backend under uvicorn with uvloop, loads it with ``wrk`` and writes JSON,
Markdown and a chart to ``bench/results/``.
"""
