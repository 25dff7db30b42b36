"""Text: the one normalization (with offsets), segmentation, and every term table."""
