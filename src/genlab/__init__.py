"""genlab: reproducible, experiment-tracked GANs and VAEs."""

__version__ = "0.1.0"
