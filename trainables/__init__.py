"""What one trial does: data sources, real subsets, augmentation, backbones, training, metrics."""
