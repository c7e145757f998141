"""What bench/bench_ray.py's Ray actors import: its pipeline and handlers."""
