"""Handlers that filepipe's own is measured against."""
