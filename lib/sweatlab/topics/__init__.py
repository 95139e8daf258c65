"""What the labs study: the kernels and models, one module per topic."""
