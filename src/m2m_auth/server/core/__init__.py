"""Protocol logic. Imports neither Starlette nor SQLAlchemy (a test enforces it)."""
