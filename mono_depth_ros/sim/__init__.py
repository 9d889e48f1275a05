"""Synthetic RGB-D scenes with exact depth and camera paths."""
