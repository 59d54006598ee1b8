"""What one trial does: data sources, real subsets, synthetic counts and mixing, backbones, training, metrics."""
