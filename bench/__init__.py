"""Benchmarks of seqkit against plain PyTorch code, run by `python -m bench`."""
