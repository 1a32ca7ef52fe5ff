"""The web page for artists (`memopainter serve`): a FastAPI JSON API and one static page, offline.

Needs the `web` extra (FastAPI, uvicorn, python-multipart); the rest of the package does not import it.
"""
