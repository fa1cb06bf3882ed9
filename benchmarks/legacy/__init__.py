"""The 0.1.0 designs, kept only as contenders that the benchmarks time in the same run."""
