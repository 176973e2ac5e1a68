"""Seeding: the plan, its stages, chunked generation and the COPY writer."""
