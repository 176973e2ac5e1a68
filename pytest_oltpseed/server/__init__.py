"""Embedded and throwaway PostgreSQL servers, root-safe."""
