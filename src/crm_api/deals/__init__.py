"""Deals in pipelines of ordered stages, with their stage history and the forecast."""
