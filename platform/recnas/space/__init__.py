"""Search spaces and the architecture encoding: specs, sampling, mutation."""
