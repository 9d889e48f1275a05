"""Command-line tools: depth_bench, build_engine."""
