"""Datasets: where they come from (sources), how they are split (splits), where they live (store)."""
