"""dalle: a small text-to-image GAN that trains and runs on a CPU."""
