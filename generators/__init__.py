"""Synthetic images: the Generator interface, its implementations, generator actors and the shared pool."""
